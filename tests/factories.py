"""Random test instances: the benchmark's synthetic generator, re-exported."""

from splitllm.bench.synthetic import random_instance, random_instance_data

__all__ = ["random_instance", "random_instance_data"]
