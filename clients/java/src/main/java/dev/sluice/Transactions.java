package dev.sluice;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Transactions with the official Java client: a transactional producer
 * (the client's defaults plus a transactional.id) commits COUNT records,
 * aborts COUNT, commits COUNT more; a read_committed consumer must read
 * exactly the committed ones, and a read_uncommitted one all of them. Each
 * round also commits an offset of group GROUP in its transaction
 * (sendOffsetsToTransaction); the group must end with the last committed
 * round's offset, not the aborted one's.
 *
 * <p>Usage: {@code java -cp JAR dev.sluice.Transactions BOOTSTRAP TOPIC COUNT}
 *
 * <p>Prints {@code OK committed=N all=M} and exits 0 on success; prints what
 * went wrong and exits 1 otherwise.
 */
public final class Transactions {
    private Transactions() {}

    private static final String GROUP = "java-transactions-offsets";

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: Transactions BOOTSTRAP TOPIC COUNT");
            System.exit(2);
        }
        String bootstrap = args[0];
        String topic = args[1];
        int count = Integer.parseInt(args[2]);

        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "java-transactions");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
            for (String[] round : new String[][] {{"committed-a", "commit"}, {"aborted", "abort"},
                                                  {"committed-b", "commit"}}) {
                producer.beginTransaction();
                for (int i = 0; i < count; i++) {
                    producer.send(new ProducerRecord<>(topic, "k" + i, round[0] + "-" + i));
                }
                producer.flush();
                long offset = round[0].equals("aborted") ? 999 : round[0].equals("committed-a") ? 5 : 7;
                producer.sendOffsetsToTransaction(
                        Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(offset)),
                        new ConsumerGroupMetadata(GROUP));
                if (round[1].equals("commit")) {
                    producer.commitTransaction();
                } else {
                    producer.abortTransaction();
                }
            }
        }

        Set<String> committed = new TreeSet<>();
        for (int i = 0; i < count; i++) {
            committed.add("committed-a-" + i);
            committed.add("committed-b-" + i);
        }
        Set<String> all = new TreeSet<>(committed);
        for (int i = 0; i < count; i++) {
            all.add("aborted-" + i);
        }
        Set<String> readCommitted = read(bootstrap, topic, "read_committed", committed);
        Set<String> readUncommitted = read(bootstrap, topic, "read_uncommitted", all);
        boolean ok = true;
        if (!readCommitted.equals(committed)) {
            Set<String> extra = new TreeSet<>(readCommitted);
            extra.removeAll(committed);
            System.out.println("read_committed read " + readCommitted.size() + " of "
                    + committed.size() + "; unexpected: " + first(extra));
            ok = false;
        }
        if (!readUncommitted.equals(all)) {
            System.out.println("read_uncommitted read " + readUncommitted.size() + " of " + all.size());
            ok = false;
        }
        long groupOffset = committedOffset(bootstrap, topic);
        if (groupOffset != 7) {
            System.out.println("the group's offset is " + groupOffset + ", not 7");
            ok = false;
        }
        if (!ok) {
            System.exit(1);
        }
        System.out.println("OK committed=" + readCommitted.size() + " all=" + readUncommitted.size());
    }

    /**
     * Reads the topic from the beginning until `expected` is all read or 30 s
     * pass. An aborted record that leaked would come before the last
     * committed ones in its partition, so it is read by then.
     */
    private static Set<String> read(String bootstrap, String topic, String isolation,
                                    Set<String> expected) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        Set<String> seen = new HashSet<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (PartitionInfo info : consumer.partitionsFor(topic)) {
                partitions.add(new TopicPartition(topic, info.partition()));
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            long deadline = System.currentTimeMillis() + 30_000;
            while (!seen.containsAll(expected) && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(200))) {
                    seen.add(record.value());
                }
            }
        }
        return new TreeSet<>(seen);
    }

    /** The offset GROUP committed for partition 0, read as stable (the default). */
    private static long committedOffset(String bootstrap, String topic) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, GROUP);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            OffsetAndMetadata committed = consumer.committed(Set.of(tp), Duration.ofSeconds(30)).get(tp);
            return committed == null ? -1 : committed.offset();
        }
    }

    private static String first(Set<String> values) {
        return values.isEmpty() ? "none" : values.iterator().next();
    }
}
