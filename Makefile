# The two commands of README.md, and what they need installed first.
#   make demo   the main job: local Kafka, topics, a worker, a population, one file
#   make test   the whole test suite (starts its own Kafka brokers)
PYTHON ?= python3
STAMP := build/.installed

.PHONY: demo test install kafka-jars bench

demo: install
	$(PYTHON) -m workerfile.cli demo

test: install
	$(PYTHON) -m pytest

install: $(STAMP) kafka-jars

# Python packages (the project, editable, with its test tools).
$(STAMP): pyproject.toml
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	mkdir -p build && touch $(STAMP)

# The Apache Kafka broker's jars, fetched by Maven once (idempotent).
kafka-jars:
	bash deploy/kafka/kafka.sh fetch

bench: install
	$(PYTHON) bench/fold_bench.py
	$(PYTHON) bench/stream_bench.py
	$(PYTHON) bench/history_bench.py
