# The appliance image: the static `appliance` binary and nothing else.
#
# images/build (`make images`) compiles the binary on the host with glibc
# linked statically and builds this file with a context holding only that
# binary, so no Rust image or registry is needed:
#
#   docker build -f Dockerfile -t appliance:VERSION DIR_WITH_THE_BINARY
#
# Run it with only the capabilities it needs and its config mounted:
#
#   docker run --cap-drop ALL --cap-add NET_ADMIN --cap-add NET_RAW \
#     -v ./keepalived.conf:/etc/appliance/keepalived.conf:ro appliance:VERSION
#
# NET_ADMIN adds and removes the VIPs (rtnetlink) and programs the dataplane;
# NET_RAW opens the VRRP (IP protocol 112) and gratuitous ARP sockets, and
# the raw TCP socket of half-open TCP_CHECKs.
FROM scratch
COPY appliance /usr/sbin/appliance
# The timeline (JSON lines) goes to a volume so it outlives the container.
VOLUME /var/lib/appliance
ENTRYPOINT ["/usr/sbin/appliance"]
CMD ["run", "--config", "/etc/appliance/keepalived.conf", "--timeline", "/var/lib/appliance/timeline.jsonl"]
