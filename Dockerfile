FROM python:3.11-slim
RUN useradd --system --home /var/lib/kluis --create-home kluis
WORKDIR /opt/kluis
COPY pyproject.toml README.md ./
COPY vault ./vault
COPY config ./config
RUN pip install --no-cache-dir .
USER kluis
ENV KLUIS_CONFIG=/opt/kluis/config/kluis.scale.toml
EXPOSE 8080
# init is idempotent: it applies migrations and creates what is missing.
CMD ["sh", "-c", "kluis init && exec kluis serve"]
