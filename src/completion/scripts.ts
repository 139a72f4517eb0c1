/**
 * The completion scripts. Each hands the words before the cursor to
 * `fcvm __complete -- WORDS...` and shows what comes back: a first line saying
 * "words", "files" or "dirs", then the candidates. Pure.
 */
export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

const BASH = String.raw`# fcvm completion for bash: eval "$(fcvm completion bash)"
_fcvm() {
  local line=${'$'}{COMP_LINE:0:COMP_POINT}
  local -a words
  read -r -a words <<< "$line"
  [[ $line == *[[:space:]] ]] && words+=("")
  local cur=${'$'}{words[${'$'}{#words[@]}-1]}
  local IFS=$'\n'
  local -a out
  out=($(fcvm __complete -- "${'$'}{words[@]:1}" 2>/dev/null))
  case ${'$'}{out[0]} in
    files) COMPREPLY=($(compgen -f -- "$cur")) ;;
    dirs) COMPREPLY=($(compgen -d -- "$cur")) ;;
    *)
      COMPREPLY=("${'$'}{out[@]:1}")
      # bash splits words at ":" (and "="): the reply replaces only what follows the last one.
      if [[ $cur == *[:=]* ]]; then
        local prefix=${'$'}{cur%"${'$'}{cur##*[:=]}"}
        local i
        for i in "${'$'}{!COMPREPLY[@]}"; do COMPREPLY[i]=${'$'}{COMPREPLY[i]#"$prefix"}; done
      fi
      ;;
  esac
}
complete -o nosort -F _fcvm fcvm 2>/dev/null || complete -F _fcvm fcvm
`;

const ZSH = String.raw`#compdef fcvm
# fcvm completion for zsh: source <(fcvm completion zsh)
_fcvm() {
  local -a out
  out=("${'$'}{(@f)$(fcvm __complete -- "${'$'}{(@)words[2,CURRENT]}" 2>/dev/null)}")
  case ${'$'}{out[1]} in
    files) _files ;;
    dirs) _files -/ ;;
    *) compadd -- "${'$'}{(@)out[2,-1]}" ;;
  esac
}
compdef _fcvm fcvm
`;

const FISH = String.raw`# fcvm completion for fish: fcvm completion fish | source
function __fcvm_complete
    # Quoted, so an empty word under the cursor is still a word.
    set -l cur (commandline -ct)
    set -l words (commandline -opc) "$cur"
    set -l out (fcvm __complete -- $words[2..-1] 2>/dev/null)
    switch "$out[1]"
        case files
            __fish_complete_path (commandline -ct)
        case dirs
            __fish_complete_directories (commandline -ct)
        case '*'
            printf '%s\n' $out[2..-1]
    end
end
complete -c fcvm -f -a '(__fcvm_complete)'
`;

export function completionScript(shell: Shell): string {
  return shell === 'bash' ? BASH : shell === 'zsh' ? ZSH : FISH;
}
