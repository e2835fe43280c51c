# Sourced by the scripts that build llama.cpp: `native_cache NAME VERSIONS` sets $cache to
# a directory under ~/.cache/bitnet-train (or $BITNET_CACHE) keyed by VERSIONS and by the
# CPU's vector extensions (the builds are native, so a cache from another CPU would not
# run), and holds a lock on it until the calling script exits.
native_cache() {
    local flags key
    flags=$(grep -o -w -E 'avx2|avx512[a-z_0-9]*|avx_vnni|f16c|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')
    key=$(printf '%s %s' "$2" "$flags" | md5sum | cut -c1-12)
    cache="${BITNET_CACHE:-$HOME/.cache/bitnet-train}/$1-$key"
    mkdir -p "$(dirname "$cache")"
    exec 9>"$cache.lock"
    flock 9
}
