# bash completion for walcut: verbs, flags and the choices of a flag.
# They are read from the --help of the walcut being completed, so they are
# always that binary's own. Installed as share/bash-completion/completions/walcut;
# without bash-completion, `source` this file.

# Reads the help of the verb path "$@" of the walcut $_walcut_cmd into
# _walcut_verbs (its subcommands), _walcut_flags (every flag name),
# _walcut_valued (the flags that take a value, space-separated and padded)
# and _walcut_choice_of ("FLAG=a b c" for each flag that lists its choices).
_walcut_read_help() {
  local line field names name section=""
  _walcut_verbs=() _walcut_flags=() _walcut_valued=" " _walcut_choice_of=()
  while IFS= read -r line; do
    case $line in
      Subcommands:) section=verbs; continue ;;
      Options:) section=flags; continue ;;
      [!\ ]*) section=""; continue ;;  # any other heading or text
      "  "[!\ ]*) ;;                    # an entry: two spaces, then its name
      *) continue ;;                    # a description's continuation, a blank line
    esac
    field=${line#  }
    field=${field%%  *}  # the name and its value's type, before the description
    case $section in
      verbs) _walcut_verbs+=("${field%% *}") ;;
      flags)
        names=${field%% *}
        for name in ${names//,/ }; do
          _walcut_flags+=("$name")
          if [[ $field == *" "* ]]; then
            _walcut_valued+="$name "
            # CLI11 lists a flag's choices as TYPE:{a,b,c}
            if [[ $field =~ \{([^}]*)\} ]]; then _walcut_choice_of+=("$name=${BASH_REMATCH[1]//,/ }"); fi
          fi
        done
        ;;
    esac
  done < <("$_walcut_cmd" "$@" --help 2>/dev/null)
}

_walcut() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  local _walcut_cmd=${COMP_WORDS[0]} word i entry
  local -a path=() _walcut_verbs _walcut_flags _walcut_choice_of
  local _walcut_valued
  COMPREPLY=()
  _walcut_read_help
  # Walk the verbs typed so far; anything else before the cursor is a flag, a value or a path.
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    for entry in "${_walcut_verbs[@]}"; do
      if [[ $word == "$entry" ]]; then
        path+=("$word")
        _walcut_read_help "${path[@]}"
        break
      fi
    done
  done
  if [[ $_walcut_valued == *" $prev "* ]]; then
    for entry in "${_walcut_choice_of[@]}"; do
      if [[ ${entry%%=*} == "$prev" ]]; then
        mapfile -t COMPREPLY < <(compgen -W "${entry#*=}" -- "$cur")
      fi
    done
    return 0  # no choices: a path or a number, left to readline's default completion
  fi
  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "${_walcut_flags[*]}" -- "$cur")
  elif ((${#_walcut_verbs[@]} > 0)); then
    mapfile -t COMPREPLY < <(compgen -W "${_walcut_verbs[*]}" -- "$cur")
  fi
  return 0  # an argument of a verb: left to readline's default (file name) completion
}

complete -o default -F _walcut walcut
