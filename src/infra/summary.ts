/** A small Markdown builder for job summaries: written for people reading them at 3 a.m. */

export function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, '<br>');
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
    this.parts.push(`\`\`\`${lang}\n${text.replace(/```/g, "'''")}\n\`\`\``);
    return this;
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
