# metgan on the official Airflow image: the same image runs every Airflow component and both
# Celery workers. Build the GPU worker's image with --build-arg TENSORFLOW=cuda.
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}-python3.11

ARG AIRFLOW_VERSION
# cpu: tensorflow-cpu from requirements.lock; cuda: TensorFlow with its CUDA libraries (GPU worker)
ARG TENSORFLOW=cpu

USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends libjpeg62-turbo fonts-dejavu-core \
 && apt-get autoremove -yqq --purge && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /opt/metgan/data /opt/metgan/results /opt/metgan/cache && chown -R airflow:root /opt/metgan

USER airflow
WORKDIR /opt/metgan
COPY --chown=airflow:root pyproject.toml README.md requirements.lock ./
COPY --chown=airflow:root metgan ./metgan
COPY --chown=airflow:root sql ./sql
# A regular (non-editable) install: the SQL ships inside the package. Airflow stays pinned in the
# same command so pip cannot move it; the lock pins the rest.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -c requirements.lock . \
 && if [ "${TENSORFLOW}" = "cuda" ]; then \
      pip uninstall -y tensorflow-cpu \
      && pip install --no-cache-dir "tensorflow[and-cuda]==$(grep -iE '^tensorflow[-_]cpu==' requirements.lock | cut -d= -f3)"; \
    fi

ENV METGAN_DATA_DIR=/opt/metgan/data \
    METGAN_RESULTS_DIR=/opt/metgan/results
WORKDIR /opt/airflow
