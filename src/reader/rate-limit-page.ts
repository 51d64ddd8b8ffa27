import crypto from 'node:crypto';

/**
 * The page a rate-limited page load gets (429): self-contained (its styles
 * inline, allowed by their hash; the stylesheet would be rate-limited too),
 * in Dutch and English, the preferred language first.
 */

const STYLE = `
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;background:#f4f5f7}
main{max-width:36rem;margin:0 auto;padding:2.5rem 1.25rem}
section{background:#fff;border:1px solid #d5d9de;border-radius:8px;padding:1.5rem 1.5rem 1.25rem;margin:0 0 1rem}
h1,h2{font-size:1.35rem;line-height:1.3;margin:0 0 .75rem}
p{margin:0 0 .75rem}
.wait{font-weight:600}
`.trim();

export const RATE_LIMIT_STYLE_HASH = `sha256-${crypto.createHash('sha256').update(STYLE, 'utf8').digest('base64')}`;

/** The Content-Security-Policy of the 429 page: nothing but its own inline style. */
export const RATE_LIMIT_PAGE_CSP = `default-src 'none'; style-src '${RATE_LIMIT_STYLE_HASH}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;

function waitText(seconds: number, lang: 'nl' | 'en'): string {
  if (seconds < 90) {
    return lang === 'nl' ? `Probeer het over ${seconds} ${seconds === 1 ? 'seconde' : 'seconden'} opnieuw.` : `Please try again in ${seconds} ${seconds === 1 ? 'second' : 'seconds'}.`;
  }
  const minutes = Math.ceil(seconds / 60);
  return lang === 'nl' ? `Probeer het over ${minutes} minuten opnieuw.` : `Please try again in ${minutes} minutes.`;
}

function section(lang: 'nl' | 'en', seconds: number, first: boolean): string {
  const h = first ? 'h1' : 'h2';
  return lang === 'nl'
    ? `<section lang="nl"><${h}>Even geduld</${h}><p>Er kwamen in korte tijd te veel verzoeken van uw verbinding of voor deze link. Uw bericht is veilig en blijft bewaard.</p><p class="wait">${waitText(seconds, 'nl')}</p></section>`
    : `<section lang="en"><${h}>Please wait a moment</${h}><p>There were too many requests from your connection or for this link in a short time. Your message is safe and is kept.</p><p class="wait">${waitText(seconds, 'en')}</p></section>`;
}

/** English first when the browser prefers English to Dutch; Dutch first otherwise. */
export function preferredLanguage(acceptLanguage: string | undefined): 'nl' | 'en' {
  for (const part of (acceptLanguage ?? '').split(',')) {
    const tag = part.split(';')[0]!.trim().toLowerCase();
    if (tag.startsWith('nl')) return 'nl';
    if (tag.startsWith('en')) return 'en';
  }
  return 'nl';
}

export function rateLimitPage(retryAfter: number, acceptLanguage: string | undefined): string {
  const first = preferredLanguage(acceptLanguage);
  const second = first === 'nl' ? 'en' : 'nl';
  const title = first === 'nl' ? 'Te veel verzoeken — Too many requests' : 'Too many requests — Te veel verzoeken';
  return `<!doctype html>
<html lang="${first}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
${section(first, retryAfter, true)}
${section(second, retryAfter, false)}
</main>
</body>
</html>
`;
}
