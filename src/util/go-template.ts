/**
 * The part of Go's text/template that `podman ps --format` and `podman inspect --format`
 * are used with: text, {{.Field.Path}}, {{json .X}}, {{index .X "key"}}, {{join .X ","}},
 * {{upper .X}}/{{lower .X}}, {{len .X}}, {{eq A B}}/{{ne A B}}, pipelines (.X | upper),
 * variables ({{range $k, $v := .X}}, $v.Field, $ the top dot), (parenthesized).Fields,
 * {{range .X}}...{{end}} and {{if .X}}...{{else}}...{{end}}, with {{- and -}} trimming. Field names match exactly, or else ignoring case, so that
 * podman's spellings (.Name, .State.Status) reach fcvm's own (name). Values print as
 * Go's %v does. Anything else is refused when the template is parsed.
 */

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'value'; expr: Expr }
  | { kind: 'range'; expr: Expr; body: Node[]; vars: string[] }
  | { kind: 'if'; expr: Expr; then: Node[]; else: Node[] };

/**
 * A field path from a base: the dot (`.A.B`; `[]` is the dot itself), a variable
 * (`$v.A`, `$` the top dot) or a parenthesized expression (`(index .P "x").A`); a
 * string or number; or a function applied to arguments.
 */
type Expr =
  | { kind: 'path'; base: 'dot' | { variable: string } | { expr: Expr }; path: string[] }
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: number }
  | { kind: 'call'; fn: string; args: Expr[] };

/** What an expression sees: the dot, and the variables in scope (`$` is the top dot). */
interface Scope {
  dot: unknown;
  vars: ReadonlyMap<string, unknown>;
}

export class TemplateError extends Error {}

const GO_MAPS = new WeakSet<object>();

/** Marks `m` as a Go map: `.Key` of a key it lacks prints `<no value>` instead of failing. Returns `m`. */
export function goMap<T extends object>(m: T): T {
  GO_MAPS.add(m);
  return m;
}

const FUNCS: Record<string, { arity: number; apply: (...a: unknown[]) => unknown }> = {
  json: { arity: 1, apply: (v) => JSON.stringify(v ?? null) },
  // A missing key is the zero value, as Go's index of a map[string]string gives it; a slice takes a number.
  index: { arity: 2, apply: (m, k) => (m && typeof m === 'object' && Object.hasOwn(m, String(k)) ? (m as Record<string, unknown>)[String(k)] : '') },
  join: { arity: 2, apply: (xs, sep) => (Array.isArray(xs) ? xs.map(format).join(String(sep)) : format(xs)) },
  len: { arity: 1, apply: (v) => (Array.isArray(v) ? v.length : typeof v === 'string' ? v.length : v && typeof v === 'object' ? Object.keys(v).length : 0) },
  eq: { arity: 2, apply: (a, b) => a === b || format(a) === format(b) },
  ne: { arity: 2, apply: (a, b) => !(a === b || format(a) === format(b)) },
  upper: { arity: 1, apply: (v) => format(v).toUpperCase() },
  lower: { arity: 1, apply: (v) => format(v).toLowerCase() },
};

/** A parsed template, ready to render values. */
export interface Template {
  render(dot: unknown): string;
  /**
   * The template as a `table` header: each value as its last field name in capitals
   * (NAMES), the text between as it is, an {{if}} as its first branch and a {{range}}
   * body once, so the header splits into the same columns as the rows.
   */
  header(): string;
}

export function parseTemplate(source: string): Template {
  const tokens = tokenize(source);
  let at = 0;
  const block = (ends: string[]): { nodes: Node[]; end: string | undefined } => {
    const nodes: Node[] = [];
    while (at < tokens.length) {
      const t = tokens[at++]!;
      if (t.kind === 'text') {
        nodes.push({ kind: 'text', text: t.text });
        continue;
      }
      const words = splitWords(t.text);
      const head = words[0];
      if (head !== undefined && ends.includes(head)) {
        if (words.length > 1) throw new TemplateError(`"{{${t.text}}}" takes nothing after ${head}`);
        return { nodes, end: head };
      }
      if (head === 'range' || head === 'if') {
        // range $v := X, or range $k, $v := X: the key (or index) and the value as variables.
        let rest = words.slice(1);
        let vars: string[] = [];
        const assign = rest.indexOf(':=');
        if (head === 'range' && assign >= 0) {
          vars = rest.slice(0, assign).join(' ').split(',').map((v) => v.trim());
          if (vars.length > 2 || !vars.every((v) => /^\$[A-Za-z_][A-Za-z0-9_]*$/.test(v))) throw new TemplateError(`"{{${t.text}}}": declare range $value := X, or range $key, $value := X`);
          rest = rest.slice(assign + 1);
        }
        const expr = parseExpr(rest, t.text);
        const body = block(head === 'if' ? ['else', 'end'] : ['end']);
        if (body.end === undefined) throw new TemplateError(`"{{${t.text}}}" has no {{end}}`);
        if (head === 'range') nodes.push({ kind: 'range', expr, body: body.nodes, vars });
        else {
          const other = body.end === 'else' ? block(['end']) : { nodes: [], end: 'end' };
          if (other.end === undefined) throw new TemplateError(`"{{${t.text}}}" has no {{end}}`);
          nodes.push({ kind: 'if', expr, then: body.nodes, else: other.nodes });
        }
        continue;
      }
      if (head === 'end' || head === 'else') throw new TemplateError(`"{{${head}}}" without a {{range}} or {{if}}`);
      nodes.push({ kind: 'value', expr: parseExpr(words, t.text) });
    }
    return { nodes, end: undefined };
  };
  const nodes = block([]).nodes;
  return {
    render: (dot) => renderNodes(nodes, { dot, vars: new Map([['$', dot]]) }),
    header: () => renderHeader(nodes),
  };
}

function renderHeader(nodes: Node[]): string {
  return nodes.map((n) => (n.kind === 'text' ? n.text : n.kind === 'value' ? headerOf(n.expr) : renderHeader(n.kind === 'if' ? n.then : n.body))).join('');
}

function headerOf(e: Expr): string {
  if (e.kind === 'path') {
    const base = e.base === 'dot' ? '' : 'expr' in e.base ? headerOf(e.base.expr) : e.base.variable.slice(1);
    return (e.path.at(-1) ?? base).toUpperCase();
  }
  if (e.kind === 'call') return e.args.map(headerOf).find(Boolean) ?? e.fn.toUpperCase();
  return '';
}

function tokenize(source: string): ({ kind: 'text'; text: string } | { kind: 'action'; text: string })[] {
  const out: ({ kind: 'text'; text: string } | { kind: 'action'; text: string })[] = [];
  let rest = source;
  while (rest.length > 0) {
    const open = rest.indexOf('{{');
    if (open < 0) {
      out.push({ kind: 'text', text: rest });
      break;
    }
    const close = rest.indexOf('}}', open + 2);
    if (close < 0) throw new TemplateError(`"${rest.slice(open, open + 20)}" has no closing }}`);
    let text = rest.slice(0, open);
    let action = rest.slice(open + 2, close);
    if (action.startsWith('-')) {
      text = text.trimEnd();
      action = action.slice(1);
    }
    rest = rest.slice(close + 2);
    if (action.endsWith('-')) {
      action = action.slice(0, -1);
      rest = rest.trimStart();
    }
    if (text) out.push({ kind: 'text', text });
    out.push({ kind: 'action', text: action.trim() });
  }
  return out;
}

/** Words of an action: quoted strings stay whole (with their quotes), and so do parenthesized groups (with what follows them, `(x).A`). */
function splitWords(action: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < action.length) {
    if (/\s/.test(action[i]!)) {
      i++;
      continue;
    }
    let j = i;
    let depth = 0;
    while (j < action.length && (depth > 0 || !/\s/.test(action[j]!))) {
      const c = action[j]!;
      if (c === '"' || c === '`') {
        const m = (c === '"' ? /^"(?:[^"\\]|\\.)*"/ : /^`[^`]*`/).exec(action.slice(j));
        j += m ? m[0].length : action.length - j;
        continue;
      }
      if (c === '(') depth++;
      else if (c === ')') depth--;
      j++;
    }
    words.push(action.slice(i, j));
    i = j;
  }
  return words;
}

function parseExpr(words: string[], action: string): Expr {
  const bad = (why: string) => new TemplateError(`"{{${action}}}": ${why}`);
  const FIELDS = /^(\.[A-Za-z_][A-Za-z0-9_]*)*$/;
  const atom = (w: string): Expr => {
    if (w === '.') return { kind: 'path', base: 'dot', path: [] };
    if (/^(\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(w)) return { kind: 'path', base: 'dot', path: w.slice(1).split('.') };
    const variable = /^(\$[A-Za-z_0-9]*)((?:\.[A-Za-z_][A-Za-z0-9_]*)*)$/.exec(w);
    if (variable) return { kind: 'path', base: { variable: variable[1]! }, path: variable[2] ? variable[2].slice(1).split('.') : [] };
    if (w.startsWith('(')) {
      const close = w.lastIndexOf(')');
      const fields = w.slice(close + 1);
      if (close < 0 || !FIELDS.test(fields)) throw bad(`"${w}" is not a (pipeline) with fields after it`);
      const inner = parseExpr(splitWords(w.slice(1, close)), action);
      return fields ? { kind: 'path', base: { expr: inner }, path: fields.slice(1).split('.') } : inner;
    }
    if (/^-?\d+$/.test(w)) return { kind: 'number', value: Number(w) };
    if (/^"(?:[^"\\]|\\.)*"$/.test(w)) {
      try {
        return { kind: 'string', value: JSON.parse(w) as string };
      } catch {
        throw bad(`${w} has an escape this template does not know`);
      }
    }
    if (/^`[^`]*`$/.test(w)) return { kind: 'string', value: w.slice(1, -1) };
    throw bad(`"${w}" is not a field (.Name), a variable ($v) or a quoted string`);
  };
  if (words.length === 0) throw bad('empty action');
  // A pipeline: each stage's value is the last argument of the next (`.Name | upper`).
  const bar = words.lastIndexOf('|');
  if (bar >= 0) {
    const before = parseExpr(words.slice(0, bar), action);
    const [fnName, ...args] = words.slice(bar + 1);
    const f = fnName === undefined ? undefined : FUNCS[fnName];
    if (!f) throw bad(`"${fnName ?? ''}" after | is not a function this template knows (${Object.keys(FUNCS).join(', ')})`);
    if (args.length + 1 !== f.arity) throw bad(`${fnName} takes ${f.arity} argument${f.arity > 1 ? 's' : ''}`);
    return { kind: 'call', fn: fnName!, args: [...args.map(atom), before] };
  }
  const [head, ...rest] = words as [string, ...string[]];
  const fn = FUNCS[head];
  if (!fn) {
    if (rest.length > 0) throw bad(`"${head}" is not a function this template knows (${Object.keys(FUNCS).join(', ')})`);
    return atom(head);
  }
  if (rest.length !== fn.arity) throw bad(`${head} takes ${fn.arity} argument${fn.arity > 1 ? 's' : ''}`);
  return { kind: 'call', fn: head, args: rest.map(atom) };
}

function evaluate(e: Expr, scope: Scope): unknown {
  if (e.kind === 'string' || e.kind === 'number') return e.value;
  if (e.kind === 'call') return FUNCS[e.fn]!.apply(...e.args.map((a) => evaluate(a, scope)));
  let v: unknown;
  if (e.base === 'dot') v = scope.dot;
  else if ('variable' in e.base) {
    if (!scope.vars.has(e.base.variable)) throw new TemplateError(`undefined variable ${e.base.variable}`);
    v = scope.vars.get(e.base.variable);
  } else v = evaluate(e.base.expr, scope);
  for (const name of e.path) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new TemplateError(`cannot take .${name} of ${format(v) || 'an empty value'}`);
    const obj = v as Record<string, unknown>;
    const key = Object.hasOwn(obj, name) ? name : Object.keys(obj).find((k) => k.toLowerCase() === name.toLowerCase());
    if (key === undefined) {
      // A map's missing key is its zero value, as Go's templates give it; a struct's is an error.
      if (GO_MAPS.has(obj)) return undefined;
      throw new TemplateError(`there is no field .${name} (fields: ${Object.keys(obj).join(', ')})`);
    }
    v = obj[key];
  }
  return v;
}

function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (v && typeof v === 'object') return Object.keys(v).length > 0;
  return Boolean(v);
}

function renderNodes(nodes: Node[], scope: Scope): string {
  let out = '';
  for (const n of nodes) {
    if (n.kind === 'text') out += n.text;
    else if (n.kind === 'value') out += format(evaluate(n.expr, scope));
    else if (n.kind === 'if') out += renderNodes(truthy(evaluate(n.expr, scope)) ? n.then : n.else, scope);
    else {
      const v = evaluate(n.expr, scope);
      // A slice's items in order, with their index; a map's values by sorted key, as Go's range.
      const items: [unknown, unknown][] = Array.isArray(v) ? v.map((x, i) => [i, x]) : v && typeof v === 'object' ? Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]]) : [];
      for (const [key, item] of items) {
        const vars = new Map(scope.vars);
        if (n.vars.length === 1) vars.set(n.vars[0]!, item);
        if (n.vars.length === 2) vars.set(n.vars[0]!, key).set(n.vars[1]!, item);
        out += renderNodes(n.body, { dot: item, vars });
      }
    }
  }
  return out;
}

/** A value as Go's %v prints it: maps as map[k:v] with sorted keys, slices as [a b]. */
export function format(v: unknown): string {
  if (v === undefined || v === null) return '<no value>';
  if (Array.isArray(v)) return `[${v.map(format).join(' ')}]`;
  if (typeof v === 'object') return `map[${Object.keys(v).sort().map((k) => `${k}:${format((v as Record<string, unknown>)[k])}`).join(' ')}]`;
  return String(v);
}
