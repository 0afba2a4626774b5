# Kluis, as docker-compose.yml runs it (kluis init, then kluis serve).
# Pinned by tag; pin by digest too once pulled (see docker-compose.yml).
FROM python:3.11.14-slim-bookworm

# pg_dump, pg_restore and psql for `kluis backup` / `kluis restore` on
# PostgreSQL: Debian bookworm's 15, the major version of the compose file's
# server (pg_dump must be at least the server's version). libturbojpeg0: the
# lossless turn of an upright-by-EXIF JPEG (without it such a photo is
# decoded and re-encoded instead; docs/media.md). ffmpeg: a video's posters
# and web rendition, made by the job workers (docs/media.md, "Variants of a video").
# tzdata: the zones uploads.camera_time_zone names (Python's zoneinfo reads them).
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-15 libturbojpeg0 ffmpeg tzdata \
 && rm -rf /var/lib/apt/lists/*

# The data directory (the keyring's volume) and the admin token's volume
# belong to the service's own user; named volumes take this ownership.
RUN useradd --system --home /var/lib/kluis --create-home kluis \
 && install -d -o kluis -g kluis -m 0700 /var/lib/kluis-admin \
 && chmod 0700 /var/lib/kluis

WORKDIR /opt/kluis
COPY pyproject.toml README.md requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY vault ./vault
COPY config ./config
RUN pip install --no-cache-dir --no-deps .

USER kluis
ENV KLUIS_CONFIG=/opt/kluis/config/kluis.compose.toml
EXPOSE 8080
# SIGTERM (docker stop) lets the answers under way finish (--shutdown-timeout);
# give the container at least that long (stop_grace_period).
STOPSIGNAL SIGTERM
CMD ["kluis", "serve"]
