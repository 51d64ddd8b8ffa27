import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir, type Teardown } from './relay.js';

/** A certificate with its key, as PEM text and as files. */
export interface CertPair {
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
}

export interface LeafOptions {
  /** IP addresses for the subjectAltName, beside the DNS names. */
  ips?: string[];
  /** Validity in days (default 30). */
  days?: number;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function san(names: string[], ips: string[]): string {
  return [...names.map((n) => `DNS:${n}`), ...ips.map((ip) => `IP:${ip}`)].join(',');
}

/**
 * A test PKI made with the openssl CLI in a temporary directory (removed at
 * teardown): one CA, and leaf certificates signed by it or self-signed. All
 * keys are EC P-256, generated when the test runs; nothing is committed.
 */
export class TestPki {
  readonly dir: string;
  readonly ca: CertPair;
  #serial = 0;

  private constructor(dir: string, ca: CertPair) {
    this.dir = dir;
    this.ca = ca;
  }

  /** A new CA named `name` (a second `create` gives a CA that the first one's users do not trust). */
  static create(t: Teardown, name = 'Zegel Test CA'): TestPki {
    const dir = tempDir(t, 'zegel-pki-');
    const keyFile = path.join(dir, 'ca.key');
    const certFile = path.join(dir, 'ca.crt');
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile], dir);
    openssl(
      ['req', '-x509', '-new', '-key', keyFile, '-sha256', '-days', '30', '-subj', `/CN=${name}`,
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', certFile],
      dir,
    );
    return new TestPki(dir, read(certFile, keyFile));
  }

  /** A leaf for `names` (the first is the CN), signed by this CA, for TLS servers. */
  leaf(names: string[], options: LeafOptions = {}): CertPair {
    const base = this.#next(names[0] ?? 'leaf');
    const keyFile = `${base}.key`;
    const csrFile = `${base}.csr`;
    const certFile = `${base}.crt`;
    const extFile = `${base}.ext`;
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile], this.dir);
    openssl(['req', '-new', '-key', keyFile, '-subj', `/CN=${names[0] ?? 'leaf'}`, '-out', csrFile], this.dir);
    fs.writeFileSync(
      extFile,
      [
        `subjectAltName=${san(names, options.ips ?? [])}`,
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=serverAuth,clientAuth',
        '',
      ].join('\n'),
    );
    openssl(
      ['x509', '-req', '-in', csrFile, '-CA', this.ca.certFile, '-CAkey', this.ca.keyFile, '-set_serial', String(1000 + this.#serial),
        '-days', String(options.days ?? 30), '-sha256', '-extfile', extFile, '-out', certFile],
      this.dir,
    );
    return read(certFile, keyFile);
  }

  /** A self-signed certificate for `names`, trusted by nobody. */
  selfSigned(names: string[], options: LeafOptions = {}): CertPair {
    const base = this.#next(`self-${names[0] ?? 'leaf'}`);
    const keyFile = `${base}.key`;
    const certFile = `${base}.crt`;
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile], this.dir);
    openssl(
      ['req', '-x509', '-new', '-key', keyFile, '-sha256', '-days', String(options.days ?? 30), '-subj', `/CN=${names[0] ?? 'leaf'}`,
        '-addext', `subjectAltName=${san(names, options.ips ?? [])}`, '-out', certFile],
      this.dir,
    );
    return read(certFile, keyFile);
  }

  #next(label: string): string {
    this.#serial += 1;
    return path.join(this.dir, `${this.#serial}-${label.replace(/[^a-z0-9.-]/gi, '_')}`);
  }
}

function read(certFile: string, keyFile: string): CertPair {
  return { cert: fs.readFileSync(certFile, 'utf8'), key: fs.readFileSync(keyFile, 'utf8'), certFile, keyFile };
}

/** Shorthand: a fresh CA for this test file. */
export function createPki(t: Teardown, name?: string): TestPki {
  return TestPki.create(t, name);
}
