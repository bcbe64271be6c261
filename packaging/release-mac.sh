#!/usr/bin/env bash
# Sign (hardened runtime), notarize, staple and wrap dist/Verdict.app in a DMG: `make release-mac`.
# Every command is explained in packaging/RELEASE.md. Needs macOS with Xcode's command line tools,
# a "Developer ID Application" certificate in the keychain, and these environment variables:
#   VERDICT_SIGN_IDENTITY   e.g. "Developer ID Application: Jane Doe (AB12CD34EF)"
#   VERDICT_TEAM_ID         e.g. AB12CD34EF
#   VERDICT_NOTARY_PROFILE  a keychain profile made once with
#                           xcrun notarytool store-credentials PROFILE --apple-id ... --team-id ...
set -euo pipefail
APP=dist/Verdict.app
DMG=dist/Verdict.dmg
ENTITLEMENTS=packaging/entitlements.plist

missing=""
[ "$(uname -s)" = Darwin ] || missing="$missing a Mac (this is $(uname -s));"
[ -n "${VERDICT_SIGN_IDENTITY:-}" ] || missing="$missing VERDICT_SIGN_IDENTITY (the Developer ID Application identity);"
[ -n "${VERDICT_TEAM_ID:-}" ] || missing="$missing VERDICT_TEAM_ID (the 10-character team id);"
[ -n "${VERDICT_NOTARY_PROFILE:-}" ] || missing="$missing VERDICT_NOTARY_PROFILE (xcrun notarytool store-credentials);"
[ -d "$APP" ] || missing="$missing $APP (run make package);"
if [ -n "$missing" ]; then
    echo "release-mac: nothing signed; missing:$missing see packaging/RELEASE.md" >&2
    exit 2
fi
case "$VERDICT_SIGN_IDENTITY" in
    *"($VERDICT_TEAM_ID)"*) ;;
    *) echo "release-mac: VERDICT_SIGN_IDENTITY is not of team $VERDICT_TEAM_ID" >&2; exit 2 ;;
esac

sign() {
    codesign --force --timestamp --options runtime --entitlements "$ENTITLEMENTS" \
        --sign "$VERDICT_SIGN_IDENTITY" "$@"
}

# 1. Inside out: every Mach-O file (libraries, extension modules, Python, Qt), then the Qt
#    framework folders, then the two executables, then the bundle.
while IFS= read -r -d '' f; do
    if file -b "$f" | grep -q Mach-O; then sign "$f"; fi
done < <(find "$APP/Contents/Frameworks" "$APP/Contents/Resources" -type f -print0)
while IFS= read -r -d '' f; do sign "$f"; done < <(find "$APP/Contents/Frameworks" -type d -name '*.framework' -print0)
sign "$APP/Contents/MacOS/verdict-cli"
sign "$APP/Contents/MacOS/Verdict"
sign "$APP"
codesign --verify --deep --strict --verbose=2 "$APP"

# 2. Notarize the zipped app, staple the ticket to it, check Gatekeeper accepts it.
ditto -c -k --keepParent "$APP" dist/Verdict-notarize.zip
xcrun notarytool submit dist/Verdict-notarize.zip --keychain-profile "$VERDICT_NOTARY_PROFILE" \
    --team-id "$VERDICT_TEAM_ID" --wait
xcrun stapler staple "$APP"
spctl --assess --type execute --verbose=2 "$APP"

# 3. The DMG: the stapled app and a link to /Applications; signed, notarized and stapled too.
rm -rf dist/dmg "$DMG" && mkdir -p dist/dmg
ditto "$APP" dist/dmg/Verdict.app
ln -s /Applications dist/dmg/Applications
hdiutil create -volname Verdict -srcfolder dist/dmg -format UDZO -ov "$DMG"
codesign --force --timestamp --sign "$VERDICT_SIGN_IDENTITY" "$DMG"
xcrun notarytool submit "$DMG" --keychain-profile "$VERDICT_NOTARY_PROFILE" --team-id "$VERDICT_TEAM_ID" --wait
xcrun stapler staple "$DMG"
spctl --assess --type open --context context:primary-signature --verbose=2 "$DMG"
echo "release-mac: $DMG is signed, notarized and stapled"
