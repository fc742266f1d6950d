# One image for every cutover role: producer (cutover run), workers, Flower, the migrate job.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY producer ./producer
COPY workers ./workers
COPY shared ./shared
COPY ops ./ops
RUN pip install --no-cache-dir -c constraints.txt .
COPY examples ./examples
ENV CUTOVER_HOME=/var/lib/cutover
VOLUME ["/var/lib/cutover"]
ENTRYPOINT ["cutover"]
CMD ["--help"]
