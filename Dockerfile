# Placeholder until the delivery issue: builds and runs consulate on Debian 12.
# The package list is deps.txt, the same one `make deps` and CI read.
FROM debian:12-slim
WORKDIR /src
COPY . .
RUN apt-get update && grep -v '^#' deps.txt | awk 'NF && $2 != "test" {print $1}' \
    | xargs apt-get install -y --no-install-recommends \
    && make && rm -rf /var/lib/apt/lists/*
EXPOSE 8080
CMD ["build/consulate", "serve", "--config", "/etc/consulate/config.json"]
