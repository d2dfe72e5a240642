# consulate's image: built from this source tree on Debian 12, in two stages.
#
#   docker build --build-arg CONSULATE_COMMIT=$(git rev-parse --short=12 HEAD) -t consulate .
#   docker run -d --name consulate -p 8080:8080 \
#       -v /etc/consulate/config.json:/etc/consulate/config.json:ro \
#       -v consulate-data:/var/lib/consulate -v consulate-key:/var/lib/consulate-key \
#       consulate
#
# build: deps.txt's packages without the marked ones (`test`: only the tests need them; the
#        list `make deps` and CI read), then `make`, the target CI builds with (the commit
#        named by the build argument CONSULATE_COMMIT).
# runtime: only the libraries the binary needs (packaging/runtime-deps.txt, the list the
#        .deb's Depends is made from) and curl for the health check; the binary and the
#        OpenSSL 3 shims in the .deb's layout (/usr/lib/consulate, lib/ beside the binary, found
#        through its RPATH $ORIGIN/lib); a non-root user; the database and the audit anchor in
#        the volume /var/lib/consulate, the audit key in its own volume
#        /var/lib/consulate-key (kept out of the database's backups); a default config
#        (packaging/docker-config.json) listening on all interfaces of the container, replaced
#        by mounting a file at /etc/consulate/config.json (README: Installing at a site).

FROM debian:12-slim AS build
WORKDIR /src
COPY deps.txt ./
RUN apt-get update \
    && grep -v '^[[:space:]]*#' deps.txt | awk 'NF == 1 {print $1}' \
       | xargs apt-get install -y --no-install-recommends \
    && rm -rf /var/lib/apt/lists/*
COPY . .
# The build context has no .git: `consulate version` names the commit given as a build
# argument (docker build --build-arg CONSULATE_COMMIT=$(git rev-parse --short=12 HEAD) …).
ARG CONSULATE_COMMIT=unknown
RUN case "$CONSULATE_COMMIT" in \
        unknown) ;; \
        ''|*[!0-9a-f]*) echo "CONSULATE_COMMIT: a commit id in hex is expected" >&2; exit 1 ;; \
    esac \
    && make GIT_COMMIT="$CONSULATE_COMMIT"

FROM debian:12-slim AS runtime
COPY packaging/runtime-deps.txt /tmp/runtime-deps.txt
RUN apt-get update \
    && { grep -v '^[[:space:]]*#' /tmp/runtime-deps.txt | awk 'NF {print $1}'; echo curl; } \
       | xargs apt-get install -y --no-install-recommends \
    && rm -rf /var/lib/apt/lists/* /tmp/runtime-deps.txt
RUN groupadd --system --gid 10001 consulate \
    && useradd --system --uid 10001 --gid consulate --home-dir /var/lib/consulate \
       --no-create-home --shell /usr/sbin/nologin consulate \
    && mkdir -p /var/lib/consulate /var/lib/consulate-key /etc/consulate \
    && chown consulate:consulate /var/lib/consulate /var/lib/consulate-key \
    && chmod 0700 /var/lib/consulate /var/lib/consulate-key
COPY --from=build /src/build/consulate /usr/lib/consulate/consulate
COPY --from=build /src/build/lib/libssl.so /usr/lib/consulate/lib/libssl.so
COPY --from=build /src/build/lib/libcrypto.so /usr/lib/consulate/lib/libcrypto.so
COPY packaging/docker-config.json /etc/consulate/config.json
RUN ln -s ../lib/consulate/consulate /usr/bin/consulate \
    && chmod 0644 /etc/consulate/config.json \
    && consulate version
ENV CONSULATE_CONFIG=/etc/consulate/config.json
USER 10001:10001
WORKDIR /var/lib/consulate
VOLUME ["/var/lib/consulate", "/var/lib/consulate-key"]
EXPOSE 8080
# Plain HTTP first; with tls.certificate set, HTTPS (the certificate is the site's own).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD curl -fsS --max-time 4 -o /dev/null http://127.0.0.1:8080/healthz \
        || curl -fsSk --max-time 4 -o /dev/null https://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["consulate"]
CMD ["serve"]
