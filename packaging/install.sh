#!/bin/sh
# Install the pacsbrowser bundle this script sits in, with its menu entry, icon and AppStream metainfo.
#
#   ./install.sh                 as a user: ~/.local (no root needed); as root: system-wide, /opt + /usr/local
#   ./install.sh --user          per user even as root          ./install.sh --system    system-wide (root)
#   ./install.sh --prefix DIR    share/ and bin/ under DIR, the program in DIR/lib/pacsbrowser
#   ./install.sh --uninstall     remove what an earlier run installed (same mode / prefix)
# Locations (packaging/README.md): program APPDIR, a link BINDIR/pacsbrowser, the desktop entry in
# DATADIR/applications, icons in DATADIR/icons/hicolor, metainfo in DATADIR/metainfo.
set -eu
APP_ID=org.pacsbrowser.PACSBrowser
HERE=$(cd "$(dirname "$0")" && pwd)
RES="$HERE/_internal/pacsbrowser/resources"

mode=auto prefix= action=install
while [ $# -gt 0 ]; do
    case "$1" in
        --user) mode=user ;;
        --system) mode=system ;;
        --prefix) prefix=${2:?--prefix needs a folder}; shift ;;
        --uninstall) action=uninstall ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ "$mode" = auto ] && { [ "$(id -u)" = 0 ] && mode=system || mode=user; }
if [ -n "$prefix" ]; then
    APPDIR=$prefix/lib/pacsbrowser BINDIR=$prefix/bin DATADIR=$prefix/share
elif [ "$mode" = system ]; then
    [ "$(id -u)" = 0 ] || { echo "install.sh: --system needs root (sudo $0 --system)" >&2; exit 1; }
    APPDIR=/opt/pacsbrowser BINDIR=/usr/local/bin DATADIR=/usr/local/share
else
    # (not under ~/.local/share/pacsbrowser: that is the user's archive)
    APPDIR=$HOME/.local/lib/pacsbrowser BINDIR=$HOME/.local/bin
    DATADIR=${XDG_DATA_HOME:-$HOME/.local/share}
fi
SIZES="16 24 32 48 64 128 256 512"

refresh() {  # the desktop's caches, where the tools exist (absent tools are not an error)
    command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$DATADIR/applications" || true
    command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$DATADIR/icons/hicolor" || true
}

if [ "$action" = uninstall ]; then
    rm -rf "$APPDIR"
    [ -L "$BINDIR/pacsbrowser" ] && rm -f "$BINDIR/pacsbrowser"
    rm -f "$DATADIR/applications/$APP_ID.desktop" "$DATADIR/metainfo/$APP_ID.metainfo.xml" \
          "$DATADIR/icons/hicolor/scalable/apps/pacsbrowser.svg"
    for s in $SIZES; do rm -f "$DATADIR/icons/hicolor/${s}x$s/apps/pacsbrowser.png"; done
    refresh
    echo "pacsbrowser removed from $APPDIR"
    exit 0
fi

[ -x "$HERE/pacsbrowser" ] && [ -d "$RES" ] || { echo "install.sh: run it from the unpacked bundle" >&2; exit 1; }
if [ "$HERE" != "$APPDIR" ]; then
    rm -rf "$APPDIR.new" && mkdir -p "$APPDIR.new"
    cp -a "$HERE/." "$APPDIR.new/"
    rm -rf "$APPDIR" && mv "$APPDIR.new" "$APPDIR"
fi
mkdir -p "$BINDIR" "$DATADIR/applications" "$DATADIR/metainfo" "$DATADIR/icons/hicolor/scalable/apps"
ln -sfn "$APPDIR/pacsbrowser" "$BINDIR/pacsbrowser"
# The entry names the program by its full path: ~/.local/bin is not on every session's PATH.
sed -e "s|^Exec=pacsbrowser|Exec=$APPDIR/pacsbrowser|" -e "s|^TryExec=pacsbrowser|TryExec=$APPDIR/pacsbrowser|" \
    "$RES/$APP_ID.desktop" > "$DATADIR/applications/$APP_ID.desktop"
chmod 644 "$DATADIR/applications/$APP_ID.desktop"
install -m 644 "$RES/$APP_ID.metainfo.xml" "$DATADIR/metainfo/$APP_ID.metainfo.xml"
install -m 644 "$RES/icons/pacsbrowser.svg" "$DATADIR/icons/hicolor/scalable/apps/pacsbrowser.svg"
for s in $SIZES; do
    mkdir -p "$DATADIR/icons/hicolor/${s}x$s/apps"
    install -m 644 "$RES/icons/hicolor/${s}x$s/apps/pacsbrowser.png" "$DATADIR/icons/hicolor/${s}x$s/apps/pacsbrowser.png"
done
refresh
echo "pacsbrowser installed in $APPDIR; command: $BINDIR/pacsbrowser; menu entry: $DATADIR/applications/$APP_ID.desktop"
