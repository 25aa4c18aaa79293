/** A small Markdown builder for job summaries: written for people reading them at 3 a.m. */

export function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, '<br>');
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
    for (const r of rows) lines.push(`| ${r.map((c) => escapeCell(c)).join(' | ')} |`);
    this.parts.push(lines.join('\n'));
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
    return `${this.parts.join('\n\n')}\n`;
  }
}
