import { parseTemplate, TemplateError, type Template } from '../util/go-template.js';
import { errors } from '../errors/catalogue.js';

/** What --format asks for: podman's JSON, a Go template per item, or a table of one. */
export type OutputFormat = { kind: 'json' } | { kind: 'template'; template: Template; table: boolean };

const HINT = 'Use a Go template such as --format \'{{.Name}} {{.State.Status}}\', "table {{.Names}}\\t{{.Status}}", or --format json';

/** Parses --format as podman does: "json", "table TEMPLATE", or a template. Pure. */
export function parseFormat(value: string): OutputFormat {
  if (value.trim() === 'json' || value.trim() === '{{json .}}') return { kind: 'json' };
  const table = /^table(\s|$)/.test(value);
  const source = table ? value.replace(/^table\s*/, '') : value;
  try {
    // Written in a shell, "\t" and "\n" arrive as two characters; podman reads them as escapes.
    return { kind: 'template', template: parseTemplate(source.replace(/\\t/g, '\t').replace(/\\n/g, '\n')), table };
  } catch (e) {
    if (e instanceof TemplateError) throw errors.invalidOption('--format', value, e.message, HINT);
    throw e;
  }
}

/** Renders items with a template format: one line each, or aligned under a header for `table`. */
export function renderFormatted(items: readonly unknown[], f: Extract<OutputFormat, { kind: 'template' }>, align: (rows: string[][]) => string): string {
  const render = (item: unknown) => {
    try {
      return f.template.render(item);
    } catch (e) {
      if (e instanceof TemplateError) throw errors.usage(`cannot apply --format: ${e.message}`, HINT);
      throw e;
    }
  };
  if (!f.table) return items.map((i) => `${render(i)}\n`).join('');
  const rows = items.map((i) => render(i).split('\t'));
  return align([f.template.header().split('\t'), ...rows]);
}
