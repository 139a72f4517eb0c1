/**
 * Kernel module dependency resolution from a depmod `modules.dep` file. Pure.
 * Each line is "path/mod.ko: dep1.ko dep2.ko".
 */
export type ModulesDep = Map<string, string[]>;

export function parseModulesDep(text: string): ModulesDep {
  const deps: ModulesDep = new Map();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const mod = line.slice(0, i).trim();
    const rest = line.slice(i + 1).trim();
    deps.set(mod, rest ? rest.split(/\s+/) : []);
  }
  return deps;
}

/** The module name of a path: "kernel/fs/fuse/fuse.ko" -> "fuse"; "-" and "_" are equal. */
export function moduleName(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

/**
 * The module files needed for `wanted`, dependencies first, each once. Names not in
 * modules.dep are reported in `missing` (they may be built into the kernel).
 */
export function resolveModules(deps: ModulesDep, wanted: readonly string[]): { order: string[]; missing: string[] } {
  const byName = new Map<string, string>();
  for (const path of deps.keys()) byName.set(moduleName(path), path);
  const order: string[] = [];
  const seen = new Set<string>();
  const missing: string[] = [];
  const visit = (path: string, stack: string[]) => {
    if (seen.has(path)) return;
    if (stack.includes(path)) throw new Error(`module dependency cycle: ${[...stack, path].join(' -> ')}`);
    for (const d of deps.get(path) ?? []) visit(d, [...stack, path]);
    seen.add(path);
    order.push(path);
  };
  for (const w of wanted) {
    const path = byName.get(w.replace(/-/g, '_'));
    if (!path) missing.push(w);
    else visit(path, []);
  }
  return { order, missing };
}
