# The spendstream image: the stream worker (`spendstream worker`) and the decision service
# (`spendstream decision serve`), both from docker-compose.yml.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY enforcement ./enforcement
COPY sinks ./sinks
COPY insights ./insights
COPY stack ./stack
COPY bus ./bus
COPY workloads ./workloads
COPY alerting ./alerting
COPY streams ./streams
COPY integrations ./integrations
COPY admin ./admin
COPY examples ./examples
RUN pip install --no-cache-dir ".[server]" \
    && useradd --create-home --uid 1000 spendstream
USER spendstream
ENV SPENDSTREAM_STACK__HOME=/home/spendstream/state
ENTRYPOINT ["spendstream"]
CMD ["--help"]
