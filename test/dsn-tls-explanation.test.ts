import t from 'tap';
import { tlsExplanation } from '../src/deliver/dsn.js';

// The plain-language line a DSN adds to a TLS refusal, in Dutch and English,
// for each reply the pool and the MX transport write (their exact forms are
// proven in delivery-tls-verify-refuses and delivery-mta-sts-enforce).
t.test('each TLS refusal gets its own explanation; other replies none', async (t) => {
  t.match(tlsExplanation('454 4.7.5 MTA-STS enforce: no MX of strict.test is listed in its policy (MX mx.strict.test; policy allows mail.elders.test)'), {
    nl: /eist \(MTA-STS\)/,
    en: /requires \(MTA-STS\)/,
  });
  t.match(tlsExplanation('454 4.7.5 TLS policy verify: the certificate of mx.selfsigned.test is not trusted (DEPTH_ZERO_SELF_SIGNED_CERT)'), { nl: /certificaat werd niet aanvaard/, en: /certificate was not accepted/ });
  t.match(tlsExplanation('454 4.7.4 TLS policy verify: mx.plain.test did not start TLS: 500 5.5.2 Error: command not recognized'), { nl: /geen versleutelde verbinding/, en: /no encrypted connection/ });
  t.equal(tlsExplanation('550 5.1.1 <x@y>: user unknown'), undefined);
  t.equal(tlsExplanation('451 4.4.1 no MX host of x.test answered'), undefined);
});
