# The twin's image: `minimeter` installed from this checkout, run as a non-root user,
# non-volatile meter registers in the /state volume. compose.yaml builds and runs it.
#
#   docker build -t minimeter-twin .
#   docker run --rm -p 127.0.0.1:5020:5020 -v twin-state:/state minimeter-twin
#
# The base is the Debian slim Python image of the version pyproject requires (>= 3.11);
# its sqlite3 (Debian bookworm: 3.40) supports the store's WAL mode.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what `pip install .` needs: the metadata (pyproject.toml names README.md as the
# readme) and the packages it lists (profiles/ ships inside the package as
# twin.shipped_profiles). Copying sources, not the whole context, keeps .venv and test
# output out of the image.
WORKDIR /build
COPY pyproject.toml README.md ./
COPY twin/ twin/
COPY devices/ devices/
COPY profiles/ profiles/
RUN pip install . && rm -rf /build

# A fixed uid so a bind-mounted state directory can be chowned to it on the host.
# /state is created and owned here: a new named volume copies this ownership.
RUN useradd --system --uid 10001 --user-group --home-dir /state --shell /usr/sbin/nologin twin \
    && mkdir -p /state && chown twin:twin /state
USER twin
WORKDIR /state
VOLUME ["/state"]

EXPOSE 5020

# Healthy when the Modbus TCP server answers a real request: FC03, one register at
# address 0, unit 1 (a normal reply or a Modbus exception both prove the serving loop
# is alive; a refused or silent socket does not). twin.health is the one probe: the
# Kubernetes readiness and liveness probes (deploy/k8s) run the same module. The port
# follows MINIMETER_PORT so a service run on another --port (compose's physical-meter)
# sets that one variable; a shard serving many ports is probed with --listening.
ENV MINIMETER_PORT=5020
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-m", "twin.health"]

# --host 0.0.0.0: inside a container the twin must listen beyond loopback; compose
# publishes the port on the host's loopback only.
CMD ["minimeter", "run", "--host", "0.0.0.0", "--port", "5020", "--state-dir", "/state"]
