/** Reading a JUnit XML report (as pytest writes it with --junitxml) into test results. */

export interface TestCase {
  id: string;
  name: string;
  classname: string;
  file?: string;
  /** 1-based line of the test, where the report has it. */
  line?: number;
  seconds: number;
  result: 'passed' | 'failed' | 'error' | 'skipped';
  message?: string;
  details?: string;
}

export interface TestReport {
  cases: TestCase[];
  passed: number;
  failed: number;
  skipped: number;
}

function unescapeXml(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&#x([0-9a-f]+);/gi, (_, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&amp;/g, '&');
}

function attributes(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of tag.matchAll(/([\w:-]+)="([^"]*)"/g)) out[m[1]] = unescapeXml(m[2]);
  return out;
}

export function parseJUnit(xml: string): TestReport {
  if (!/<testsuites?[\s>]/.test(xml)) throw new Error('not a JUnit XML report (no <testsuite> element)');
  const cases: TestCase[] = [];
  const re = /<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g;
  for (const m of xml.matchAll(re)) {
    const a = attributes(m[1]);
    const body = m[3] ?? '';
    const child = /<(failure|error|skipped)\b([^>]*?)(\/>|>([\s\S]*?)<\/\1>)/.exec(body);
    const kind = child?.[1];
    const childAttrs = child ? attributes(child[2]) : {};
    const result: TestCase['result'] = kind === 'failure' ? 'failed' : kind === 'error' ? 'error' : kind === 'skipped' ? 'skipped' : 'passed';
    const classname = a.classname ?? '';
    cases.push({
      id: classname ? `${classname}::${a.name}` : a.name,
      name: a.name ?? '',
      classname,
      file: a.file,
      line: a.line !== undefined && /^\d+$/.test(a.line) ? Number(a.line) + 1 : undefined,
      seconds: Number(a.time ?? 0) || 0,
      result,
      message: childAttrs.message,
      details: child?.[4] ? unescapeXml(child[4].replace(/^<!\[CDATA\[|\]\]>$/g, '')).trim() : undefined,
    });
  }
  return {
    cases,
    passed: cases.filter((c) => c.result === 'passed').length,
    failed: cases.filter((c) => c.result === 'failed' || c.result === 'error').length,
    skipped: cases.filter((c) => c.result === 'skipped').length,
  };
}
