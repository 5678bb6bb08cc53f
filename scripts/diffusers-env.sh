# Source this on the GPU machine, from the repository root:
#     source scripts/diffusers-env.sh
# Unpacks the Python sources carried in .device/ (git-ignored; packed on the
# CPU machine with `git archive`: diffusers-src.tar.gz = diffusers main,
# deepcache-src.tar.gz = DeepCache/, tomesd-src.tar.gz = tomesd/,
# tgate-src.tar.gz = tgate/) into /tmp/pysrc (or $DIFFSEARCH_PYSRC) and puts
# that folder first on PYTHONPATH, for bench/diffusers_bench.py. Nothing is
# installed. Prints which tarballs were found.
_dse_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
_dse_dst="${DIFFSEARCH_PYSRC:-/tmp/pysrc}"
mkdir -p "$_dse_dst"
for _dse_name in diffusers deepcache tomesd tgate; do
  _dse_tar="$_dse_root/.device/$_dse_name-src.tar.gz"
  if [ -f "$_dse_tar" ]; then
    # Replace, not overlay: drop what an earlier unpack left of the same folders.
    for _dse_top in $(tar -tzf "$_dse_tar" | cut -d/ -f1 | sort -u); do
      case "$_dse_top" in ""|.|..) ;; *) rm -rf "${_dse_dst:?}/$_dse_top" ;; esac
    done
    if tar -xzf "$_dse_tar" -C "$_dse_dst"; then
      echo "diffusers-env: $_dse_name: $(tar -tzf "$_dse_tar" | cut -d/ -f1 | sort -u | tr '\n' ' ')<- .device/$_dse_name-src.tar.gz"
    else
      echo "diffusers-env: $_dse_name: .device/$_dse_name-src.tar.gz did not unpack"
    fi
  else
    echo "diffusers-env: $_dse_name: not found (.device/$_dse_name-src.tar.gz)"
  fi
done
case ":${PYTHONPATH:-}:" in
  *":$_dse_dst:"*) ;;
  *) export PYTHONPATH="$_dse_dst${PYTHONPATH:+:$PYTHONPATH}" ;;
esac
echo "diffusers-env: PYTHONPATH=$PYTHONPATH"
unset _dse_root _dse_dst _dse_name _dse_tar _dse_top
