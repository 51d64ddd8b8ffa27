/**
 * The link key in the URL fragment, taken out of sight: read once, then the
 * fragment is removed from the address bar and from this history entry
 * (history.replaceState) and the key is kept only in sessionStorage (this tab,
 * this origin; gone when the tab closes). A reload in the same tab finds it
 * there; the key is never in the browser history, a bookmark made later, a
 * copied address or a Referer.
 */
import { parseLinkKey } from './crypto.js';

/** What the page keeps in sessionStorage: one key per link or status page. */
export function storageKey(kind: 'm' | 's', id: string): string {
  return `zegel:${kind}:${id}`;
}

function storage(): Storage | null {
  try {
    return window.sessionStorage;
  } catch {
    // storage refused (a privacy setting): the page still works until a reload
    return null;
  }
}

/**
 * The key of this page: from the fragment (which is then removed), or from
 * sessionStorage after a reload. Null when neither holds a well-formed key,
 * or when `key` is null (no valid id in the path: the fragment only goes).
 */
export function takeFragmentKey(key: string | null): Uint8Array<ArrayBuffer> | null {
  const hash = location.hash;
  if (hash) {
    // whatever the fragment held, it leaves the address bar and this history entry
    history.replaceState(history.state, '', `${location.pathname}${location.search}`);
    if (key === null) return null;
    const fromHash = parseLinkKey(hash);
    const store = storage();
    if (fromHash) {
      try {
        store?.setItem(key, hash.replace(/^#/, ''));
      } catch {
        // quota or privacy setting: only a reload is lost
      }
    } else {
      store?.removeItem(key);
    }
    return fromHash;
  }
  if (key === null) return null;
  const stored = storage()?.getItem(key);
  return stored ? parseLinkKey(stored) : null;
}
