/**
 * podman's switches (`--read-only`, `--tls-verify`, ...) take a value only after "=":
 * `podman run --read-only alpine` runs alpine. Commander's optional values would take
 * "alpine" as the switch's value instead, so the words before the image are rewritten
 * first: a bare switch becomes `--switch=true`, and `-v=VALUE` is `-v VALUE`. Pure.
 */
export interface OptionShape {
  short?: string | undefined;
  long?: string | undefined;
  /** Takes a value (`<value>`): the next word is that value unless written with "=". */
  takesValue: boolean;
  /** A switch with an optional `=value` (`[bool]`). */
  isSwitch: boolean;
}

export function switchesWithEquals(args: readonly string[], options: readonly OptionShape[]): string[] {
  const out = [...args];
  for (let i = 0; i < out.length; i++) {
    const w = out[i]!;
    // The image (or "--") ends the options; what follows is the container's.
    if (w === '--' || !w.startsWith('-') || w === '-') break;
    if (w.startsWith('--')) {
      if (w.includes('=')) continue;
      const o = options.find((x) => x.long === w);
      if (o?.isSwitch) out[i] = `${w}=true`;
      else if (o?.takesValue) i++;
      continue;
    }
    // podman's -v=VALUE (and -d=false) is VALUE, where commander would take "=VALUE".
    if (w.length > 2 && w[2] === '=') {
      const o = options.find((x) => x.short === w.slice(0, 2));
      if (o?.takesValue) {
        out.splice(i, 1, w.slice(0, 2), w.slice(3));
        i++;
        continue;
      }
      if (o?.isSwitch && o.long) {
        out[i] = `${o.long}=${w.slice(3)}`;
        continue;
      }
    }
    // A switch among short flags (-P, -dP) becomes --long=true, the other letters stay.
    const letters = [...w.slice(1)];
    const valueAt = letters.findIndex((l) => options.find((x) => x.short === `-${l}`)?.takesValue);
    const flags = valueAt < 0 ? letters : letters.slice(0, valueAt);
    if (flags.some((l) => options.find((x) => x.short === `-${l}`)?.isSwitch)) {
      const words = flags.map((l) => {
        const o = options.find((x) => x.short === `-${l}`);
        return o?.isSwitch && o.long ? `${o.long}=true` : `-${l}`;
      });
      if (valueAt >= 0) words.push(`-${letters.slice(valueAt).join('')}`);
      out.splice(i, 1, ...words);
      i += words.length - 1;
    }
    if (takesNextWord(out[i]!, options)) i++;
  }
  return out;
}

/**
 * Whether a word of short flags, maybe grouped (-it, -dit, -e KEY=V, -eKEY=V), takes
 * the next word as a value: a value-taking letter takes the rest of its word, or the
 * next word when it is the last letter. Pure.
 */
function takesNextWord(w: string, options: readonly OptionShape[]): boolean {
  for (let j = 1; j < w.length; j++) {
    if (options.find((x) => x.short === `-${w[j]}`)?.takesValue) return j === w.length - 1;
  }
  return false;
}

/**
 * podman exec's rule for `fcvm exec NAME CMD ARGS`: options may come before the
 * command, and the command's own words (`ls -l`) are never fcvm's. Returns the words
 * with "--" put before the command's first word, unless the caller wrote one itself.
 * The first word that is not an option is the VM's name, unless `nameOption` (--pid),
 * which names the VM instead, came before it. Pure.
 */
export function endOptionsAtCommand(args: readonly string[], options: readonly OptionShape[], nameOption: string): string[] {
  let needName = true;
  for (let i = 0; i < args.length; i++) {
    const w = args[i]!;
    if (w === '--') return [...args];
    if (!w.startsWith('-') || w === '-') {
      if (!needName) return [...args.slice(0, i), '--', ...args.slice(i)];
      needName = false;
      continue;
    }
    if (w.startsWith('--')) {
      if (w === nameOption || w.startsWith(`${nameOption}=`)) needName = false;
      if (options.find((x) => x.long === w)?.takesValue) i++;
      continue;
    }
    if (takesNextWord(w, options)) i++;
  }
  return [...args];
}
