# The two commands of README.md, and what they need installed first.
#   make demo   the main job: local Kafka, topics, a worker, a population, one file
#   make test   the whole test suite (starts its own Kafka brokers)
PYTHON ?= python3
STAMP := build/.installed

.PHONY: demo test install kafka-jars registry-jars connect-jars asyncapi-parser java-example bench rehearsal

demo: install
	$(PYTHON) -m workerfile.cli demo

test: install
	$(PYTHON) -m pytest

install: $(STAMP) kafka-jars registry-jars connect-jars asyncapi-parser java-example

# Python packages (the project, editable, with its test tools).
$(STAMP): pyproject.toml
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	mkdir -p build && touch $(STAMP)

# The Apache Kafka broker's jars, fetched by Maven once (idempotent).
kafka-jars:
	bash deploy/kafka/kafka.sh fetch

# Apicurio Registry (the schema registry of the Confluent wire format), fetched by Maven once.
registry-jars:
	bash deploy/registry/registry.sh fetch

# Kafka Connect, Debezium's JDBC sink and Apicurio's converter (deploy/connect/), fetched by Maven once.
connect-jars:
	bash deploy/connect/connect.sh fetch

# The official AsyncAPI parser (npm, the exact versions of deploy/asyncapi/package-lock.json,
# no install scripts) that the tests check docs/asyncapi.json with.
asyncapi-parser: deploy/asyncapi/node_modules/.package-lock.json

deploy/asyncapi/node_modules/.package-lock.json: deploy/asyncapi/package-lock.json
	npm ci --prefix deploy/asyncapi --ignore-scripts --no-audit --no-fund --loglevel=error

# The Java consumer example (examples/java/README.md): Maven fetches kafka-clients, Avro and
# the plugins the first time, then builds the jar again only when its sources or the schemas changed.
JAVA_JAR := examples/java/consumer/target/workerfile-java-consumer.jar
JAVA_SOURCES := $(shell find examples/java -name '*.java' -o -name pom.xml) schemas/java/pom.xml \
	$(wildcard schemas/avro/*.avsc) $(wildcard schemas/released/*/*.avsc) schemas/released/fingerprints.json
java-example: $(JAVA_JAR)

$(JAVA_JAR): $(JAVA_SOURCES)
	mvn -q -B -f examples/java/pom.xml package

# The benchmark scripts (figures in README.md, "Performance"); the rehearsal at a size that
# takes minutes here. `make rehearsal` runs it at the issue's full size (hours on 2 cores).
bench: install
	$(PYTHON) bench/fold_bench.py
	$(PYTHON) bench/stream_bench.py
	$(PYTHON) bench/history_bench.py
	$(PYTHON) bench/scaleout_bench.py
	$(PYTHON) bench/rehearsal.py --workers 1000 --sample 0

rehearsal: install
	$(PYTHON) bench/rehearsal.py
