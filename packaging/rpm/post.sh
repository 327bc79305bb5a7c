# docspace-siem %post: create the service user; never start an unconfigured agent.
getent group docspace-siem >/dev/null || groupadd --system docspace-siem
getent passwd docspace-siem >/dev/null || useradd --system --gid docspace-siem \
    --home-dir /var/lib/docspace-siem --no-create-home --shell /sbin/nologin \
    --comment "docspace-siem forwarder" docspace-siem
# One file per portal (`include = ["/etc/docspace-siem/portals.d/*.toml"]`).
install -d -m 0750 -o root -g docspace-siem /etc/docspace-siem/portals.d
chown root:docspace-siem /etc/docspace-siem /etc/docspace-siem/*.toml /etc/docspace-siem/portals.d/*.toml 2>/dev/null || :
chmod 0750 /etc/docspace-siem
chmod 0640 /etc/docspace-siem/*.toml /etc/docspace-siem/portals.d/*.toml 2>/dev/null || :
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || :; fi
