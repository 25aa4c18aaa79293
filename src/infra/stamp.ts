/** A UTC time as ids and file names carry it: 20261204T170000Z (sortable, no separators to quote). */
export function utcStamp(at: Date = new Date()): string {
  return at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}
