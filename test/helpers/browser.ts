import { chromium, type Browser, type BrowserContextOptions, type Page } from 'playwright-core';
import type { Teardown } from './relay.js';

/**
 * Debian's Chromium, headless, driven by playwright-core (no browser download).
 * One browser per test file; each call to `page` opens a fresh context (its own
 * cookies), closed at teardown.
 */
export async function launchBrowser(t: Teardown): Promise<{ browser: Browser; page(options?: BrowserContextOptions): Promise<Page> }> {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
  t.teardown(() => browser.close());
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
