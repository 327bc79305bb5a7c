# docspace-siem %preun: stop the service on erase (not on upgrade).
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now docspace-siem.service >/dev/null 2>&1 || :
fi
