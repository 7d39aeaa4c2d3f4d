#!/usr/bin/env bash
# Installs the Debian packages the project needs and pip cannot provide.
#   runtime: a C compiler, pkg-config and the MariaDB client headers that mysqlclient builds against;
#            Pango, HarfBuzz's subsetter and a font, which WeasyPrint renders the report PDF with.
#   test:    Debian's Chromium and ChromeDriver, which the browser tests drive headless; nginx, the
#            reverse proxy the sign-in throttling tests start in front of the app; Orthanc, the PACS
#            the DICOM tests send to and receive from; dicom3tools (dciodvfy), which checks the SR.
# Does nothing when they are present; without root it says what to install and stops.
set -euo pipefail

case "${1:-runtime}" in
  runtime) packages=(gcc pkg-config libmariadb-dev libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core) ;;
  test) packages=(chromium chromium-driver nginx orthanc dicom3tools) ;;
  *) echo "usage: $0 runtime|test" >&2; exit 2 ;;
esac

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo)
else
  echo "Missing Debian packages: ${missing[*]}. Install them as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "Installing Debian packages: ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
