/**
 * A small Markdown builder for job summaries: written for people reading them at 3 a.m. GitHub
 * caps a step's summary at 1 MiB and drops what is over, so every part is bounded: a cell at
 * MAX_CELL characters, a table at MAX_ROWS rows (the rest is named, and the step's log has it all),
 * the whole summary at MAX_BYTES.
 */
export const MAX_CELL = 500;
export const MAX_ROWS = 100;
export const MAX_BYTES = 512 * 1024;

export function escapeCell(text: string): string {
  const cut = text.length > MAX_CELL ? `${text.slice(0, MAX_CELL)}… (${text.length - MAX_CELL} more characters)` : text;
  return cut.replace(/\|/g, '\\|').replace(/\r?\n/g, '<br>');
}

/**
 * Text in a fenced code block it cannot close: the fence is one backtick longer than the longest
 * run of backticks in the text (container logs are written by the app, any branch of it).
 */
export function fenced(text: string, lang = ''): string {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return `${fence}${lang}\n${text}\n${fence}`;
}

export class Summary {
  private readonly parts: string[] = [];

  heading(text: string, level = 2): this {
    this.parts.push(`${'#'.repeat(level)} ${text}`);
    return this;
  }
  text(text: string): this {
    this.parts.push(text);
    return this;
  }
  list(items: string[]): this {
    if (items.length) this.parts.push(items.map((i) => `- ${i}`).join('\n'));
    return this;
  }
  table(header: string[], rows: string[][]): this {
    const lines = [`| ${header.map(escapeCell).join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`];
    for (const r of rows.slice(0, MAX_ROWS)) lines.push(`| ${r.map((c) => escapeCell(c)).join(' | ')} |`);
    this.parts.push(lines.join('\n'));
    if (rows.length > MAX_ROWS) this.parts.push(`… and ${rows.length - MAX_ROWS} more rows, not shown here (the step's log or outputs have the full list).`);
    return this;
  }
  code(text: string, lang = ''): this {
    this.parts.push(fenced(text, lang));
    return this;
  }
  /** A collapsed block of text shown as is (logs): fenced so that nothing in it is read as Markdown. */
  detailsCode(title: string, text: string): this {
    return this.details(escapeCell(title), fenced(text));
  }
  details(title: string, body: string): this {
    this.parts.push(`<details><summary>${title}</summary>\n\n${body}\n\n</details>`);
    return this;
  }
  get empty(): boolean {
    return this.parts.length === 0;
  }
  toMarkdown(): string {
    const out: string[] = [];
    let bytes = 0;
    for (const [i, part] of this.parts.entries()) {
      const size = Buffer.byteLength(part) + 2;
      if (bytes + size > MAX_BYTES) {
        out.push(
          `… ${this.parts.length - i} more section(s) cut: the summary reached ${Math.round(MAX_BYTES / 1024)} KiB (GitHub keeps 1 MiB a step). The step's log and outputs have the rest.`,
        );
        break;
      }
      out.push(part);
      bytes += size;
    }
    return `${out.join('\n\n')}\n`;
  }
}
