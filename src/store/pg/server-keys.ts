import { openChunk, sealChunk, type StorageKey } from '../../crypto/storage-key.js';

/**
 * K_srv on PostgreSQL: every server half of a link key (secure_links.k_srv,
 * secure_messages.sender_k_srv) is stored sealed under the storage key
 * (src/crypto/storage-key.ts), bound to the row it belongs to, so a copy of
 * the database, its WAL or a backup holds no K_srv without the key file the
 * nodes hold, and a sealed K_srv copied onto another row does not open.
 *
 * Contexts: `ksrv:<link id>` for a recipient's link, `ksrv-status:<secure id>`
 * for the sender's status link (ids are base64url: no colon in them).
 */
export function linkKsrvContext(linkId: string): string {
  return `ksrv:${linkId}`;
}

export function statusKsrvContext(secureId: string): string {
  return `ksrv-status:${secureId}`;
}

export function sealKsrv(key: StorageKey, context: string, kSrv: Buffer): Buffer {
  return sealChunk(key, context, kSrv);
}

/** Opens a stored K_srv; NULL stays null (revoked, expired, replaced or purged). A wrong key or row refuses (ZEGEL_STORAGE_SEAL). */
export function openKsrv(key: StorageKey, context: string, sealed: Buffer | null): Buffer | null {
  return sealed === null ? null : openChunk(key, context, sealed);
}
