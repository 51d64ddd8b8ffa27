import { chromium, type Browser, type BrowserContextOptions, type Page } from 'playwright-core';
import tap from 'tap';
import type { Teardown } from './relay.js';

let shared: Promise<Browser> | undefined;

/** Debian's Chromium, headless, driven by playwright-core (no browser download): started once per test file. */
function browserOfThisFile(): Promise<Browser> {
  if (!shared) {
    shared = chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    });
    const launched = shared;
    tap.teardown(async () => (await launched).close());
  }
  return shared;
}

/**
 * The file's one browser; each call to `page` opens a fresh context (its own
 * cookies), closed at `t`'s teardown, so subtests share the browser but never
 * a cookie.
 */
export async function launchBrowser(t: Teardown): Promise<{ browser: Browser; page(options?: BrowserContextOptions): Promise<Page> }> {
  const browser = await browserOfThisFile();
  return {
    browser,
    async page(options: BrowserContextOptions = {}) {
      const context = await browser.newContext({ acceptDownloads: true, locale: 'nl-NL', ...options });
      t.teardown(() => context.close());
      return context.newPage();
    },
  };
}

/** A phone-sized viewport (360 px wide). */
export const PHONE = { viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true };
