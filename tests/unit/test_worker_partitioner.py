"""The worker's cached partitioner places every key exactly where Kafka's default would."""

from aiokafka.partitioner import DefaultPartitioner

from accord.worker.faust_compat import partition_by_key


def test_keys_land_where_the_default_partitioner_puts_them():
    for count in (1, 6, 12):
        partitions = list(range(count))
        for n in range(2000):
            key = f"person-{n}".encode()
            expected = DefaultPartitioner()(key, partitions, partitions)
            assert partition_by_key(key, partitions, partitions) == expected
            assert partition_by_key(key, partitions, partitions) == expected  # cached


def test_records_without_a_key_go_to_an_available_partition():
    assert partition_by_key(None, [0, 1, 2], [2]) == 2
    assert partition_by_key(None, [0, 1, 2], []) in (0, 1, 2)
