/** A UTC time as ids and file names carry it: 20261204T170000Z (sortable, no separators to quote). */
export function utcStamp(at: Date = new Date()): string {
  return at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/** The time a utcStamp() names (20261204T170000Z), the inverse of utcStamp. */
export function stampTime(stamp: string): Date {
  return new Date(stamp.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z'));
}
