# bash completion for the postern programs: postern, postern-tunnel, postern-forwarder and
# postern-fetch. Installed once per program name; each copy registers all four.

# Mailbox addresses of the registry, for --mailbox.
_postern_mailboxes() {
  local registry=${POSTERN_MAILBOXES:-/etc/postern/mailboxes.toml}
  [[ -r $registry ]] || return 0
  sed -n 's/^[[:space:]]*address[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$registry"
}

# Completes the value of option $1 (the word before the cursor); returns 1 when $1 takes none.
_postern_value() {
  local cur=$2
  case $1 in
    -c | --config | -m | --mailboxes)
      mapfile -t COMPREPLY < <(compgen -f -X '!*.toml' -- "$cur"; compgen -d -- "$cur") ;;
    --ca-file | --cert-file | --key-file)
      mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
    -C | --directory | --ca-dir)
      mapfile -t COMPREPLY < <(compgen -d -- "$cur") ;;
    --log-format) mapfile -t COMPREPLY < <(compgen -W "text json" -- "$cur") ;;
    --verify) mapfile -t COMPREPLY < <(compgen -W "full none" -- "$cur") ;;
    --tls-min) mapfile -t COMPREPLY < <(compgen -W "1.2 1.3" -- "$cur") ;;
    --first-run) mapfile -t COMPREPLY < <(compgen -W "all none since:" -- "$cur") ;;
    --mailbox) mapfile -t COMPREPLY < <(compgen -W "$(_postern_mailboxes)" -- "$cur") ;;
    --status)
      mapfile -t COMPREPLY < <(compgen -W "delivered partial failed pending overdue uncertain" \
        -- "$cur") ;;
    --forwarder-audit | --fetch-audit | --index)
      mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
    --connect)
      mapfile -t COMPREPLY < <(compgen -W "tls:// smtps:// smtp+starttls:// pop3s:// \
        pop3+starttls:// imaps:// imap+starttls://" -- "$cur") ;;
    --grace | --connect-timeout | --handshake-timeout | --idle-timeout | --verify-host | --sni | \
      --pin-sha256 | --alpn | --ciphers | --ehlo | --timeout | --message-id | --recipient | \
      --since | --until | --accept-within | --deliver-within)
      COMPREPLY=() ;;  # free text: nothing to offer
    *) return 1 ;;
  esac
  return 0
}

_postern_common="-h --help -c --config --check -v --verbose -q --quiet --trace --log-format
  --version"

_postern_program() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]} options
  _postern_value "$prev" "$cur" && return 0
  case $1 in
    postern-tunnel)
      options="$_postern_common --grace --stdio --connect --ca-file --ca-dir --verify-host
        --sni --pin-sha256 --verify --cert-file --key-file --alpn --tls-min --ciphers --ehlo
        --connect-timeout --handshake-timeout --idle-timeout" ;;
    postern-forwarder) options="$_postern_common --grace --sendmail" ;;
    postern-fetch)
      options="$_postern_common --mailbox --dry-run --retry-failed --first-run --daemon
        --grace" ;;
  esac
  mapfile -t COMPREPLY < <(compgen -W "$options" -- "$cur")
}

_postern() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  if ((COMP_CWORD == 1)); then
    mapfile -t COMPREPLY < <(compgen -W "check probe receipts version -h --help --version" \
      -- "$cur")
    return 0
  fi
  case ${COMP_WORDS[1]} in
    check)
      _postern_value "$prev" "$cur" && return 0
      if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "-C --directory --json -h --help" -- "$cur")
      else
        mapfile -t COMPREPLY < <(compgen -f -X '!*.toml' -- "$cur"; compgen -d -- "$cur")
      fi ;;
    probe)
      _postern_value "$prev" "$cur" && return 0
      if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "-m --mailboxes --smtp --pop3 --auth --trace --ca-file --ehlo
          --timeout --json -h --help" -- "$cur")
      else
        mapfile -t COMPREPLY < <(compgen -W "$(_postern_mailboxes) smtps:// smtp+starttls://
          pop3s:// pop3+starttls://" -- "$cur")
      fi ;;
    receipts)
      _postern_value "$prev" "$cur" && return 0
      mapfile -t COMPREPLY < <(compgen -W "--forwarder-audit --fetch-audit --index --reindex
        --message-id --mailbox --recipient --since --until --status --pending --accept-within
        --deliver-within --json --csv -h --help" -- "$cur") ;;
    *) COMPREPLY=() ;;
  esac
}

complete -F _postern postern
complete -F _postern_program postern-tunnel postern-forwarder postern-fetch
