package dev.sluice;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.Utils;

/**
 * Round trip through a Kafka-compatible broker with the official Java client:
 * create a 3-partition topic, produce COUNT keyed records with the
 * producer's defaults (idempotent, acks=all),
 * read them back with assign + seekToBeginning and check exactly-once,
 * per-key order, offsets and partitions, then check ListOffsets.
 *
 * <p>Usage: {@code java -jar sluice-java-client-tests.jar BOOTSTRAP TOPIC COUNT}
 *
 * <p>Prints {@code OK produced=N consumed=N} and exits 0 on success; prints
 * what went wrong and exits 1 otherwise (2 for bad arguments).
 */
public final class RoundTrip {
    private static final int PARTITIONS = 3;
    private static final short REPLICATION_FACTOR = 1;
    private static final int KEYS = 10;
    private static final long OP_TIMEOUT_S = 30;
    private static final long CONSUME_TIMEOUT_MS = 60_000;
    private static final int MAX_REPORTED_ERRORS = 20;

    /** Raised for a failed check; the message says what went wrong. */
    static final class CheckFailed extends Exception {
        CheckFailed(String message) {
            super(message);
        }

        CheckFailed(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** Where the producer's ack says record i went. */
    record Ack(int partition, long offset) {}

    private final String bootstrap;
    private final String topic;
    private final int count;
    private final List<String> errors = new ArrayList<>();
    private int errorCount = 0;

    private RoundTrip(String bootstrap, String topic, int count) {
        this.bootstrap = bootstrap;
        this.topic = topic;
        this.count = count;
    }

    public static void main(String[] args) {
        if (args.length != 3) {
            System.err.println("usage: RoundTrip BOOTSTRAP TOPIC COUNT");
            System.exit(2);
        }
        int count;
        try {
            count = Integer.parseInt(args[2]);
        } catch (NumberFormatException e) {
            count = -1;
        }
        if (count < 1) {
            System.err.println("COUNT must be a positive integer: " + args[2]);
            System.exit(2);
        }
        RoundTrip rt = new RoundTrip(args[0], args[1], count);
        int consumed;
        try {
            consumed = rt.run();
        } catch (CheckFailed e) {
            System.out.println("FAIL " + e.getMessage());
            if (e.getCause() != null) {
                e.getCause().printStackTrace(System.out);
            }
            System.exit(1);
            return;
        } catch (Exception e) {
            System.out.println("FAIL unexpected error: " + e);
            e.printStackTrace(System.out);
            System.exit(1);
            return;
        }
        System.out.println("OK produced=" + count + " consumed=" + consumed);
        System.exit(0);
    }

    private void error(String message) {
        errorCount++;
        if (errors.size() < MAX_REPORTED_ERRORS) {
            errors.add(message);
        }
    }

    private void failIfErrors(String stage) throws CheckFailed {
        if (errorCount == 0) {
            return;
        }
        StringBuilder sb = new StringBuilder();
        sb.append(stage).append(": ").append(errorCount).append(" problem(s)");
        for (String e : errors) {
            sb.append("\n  - ").append(e);
        }
        if (errorCount > errors.size()) {
            sb.append("\n  ... and ").append(errorCount - errors.size()).append(" more");
        }
        throw new CheckFailed(sb.toString());
    }

    private static String key(int i) {
        return "key-" + (i % KEYS);
    }

    private static String value(int i) {
        return "value-" + i;
    }

    /** The partition the Java client's default partitioner picks for a keyed record. */
    private static int expectedPartition(String key) {
        byte[] bytes = key.getBytes(StandardCharsets.UTF_8);
        return Utils.toPositive(Utils.murmur2(bytes)) % PARTITIONS;
    }

    private static Throwable unwrap(Throwable t) {
        return (t instanceof ExecutionException && t.getCause() != null) ? t.getCause() : t;
    }

    private int run() throws Exception {
        createAndDescribeTopic();
        Ack[] acks = produce();
        int consumed = consume(acks);
        checkListOffsets(acks);
        return consumed;
    }

    // ---- 1. admin: create + describe -------------------------------------

    private void createAndDescribeTopic() throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "sluice-roundtrip-admin");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 30_000);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60_000);
        try (Admin admin = Admin.create(props)) {
            try {
                admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, REPLICATION_FACTOR)))
                        .all()
                        .get(OP_TIMEOUT_S, TimeUnit.SECONDS);
            } catch (ExecutionException e) {
                Throwable cause = unwrap(e);
                if (cause instanceof TopicExistsException) {
                    throw new CheckFailed("create topic: topic '" + topic
                            + "' already exists (the test needs a fresh topic name)");
                }
                throw new CheckFailed("create topic '" + topic + "' failed: " + cause, cause);
            }

            TopicDescription desc;
            try {
                desc = admin.describeTopics(List.of(topic))
                        .allTopicNames()
                        .get(OP_TIMEOUT_S, TimeUnit.SECONDS)
                        .get(topic);
            } catch (ExecutionException e) {
                throw new CheckFailed("describe topic '" + topic + "' failed: " + unwrap(e), unwrap(e));
            }
            if (desc == null) {
                throw new CheckFailed("describe topic: no description returned for '" + topic + "'");
            }
            if (!topic.equals(desc.name())) {
                error("describe topic: name is '" + desc.name() + "', expected '" + topic + "'");
            }
            if (desc.isInternal()) {
                error("describe topic: topic is reported as internal");
            }
            List<TopicPartitionInfo> parts = desc.partitions();
            if (parts.size() != PARTITIONS) {
                error("describe topic: " + parts.size() + " partitions, expected " + PARTITIONS);
            }
            for (int p = 0; p < parts.size(); p++) {
                TopicPartitionInfo info = parts.get(p);
                if (info.partition() != p) {
                    error("describe topic: partition at index " + p + " has id " + info.partition());
                }
                if (info.leader() == null || info.leader().isEmpty()) {
                    error("describe topic: partition " + info.partition() + " has no leader");
                }
                if (info.replicas().size() != REPLICATION_FACTOR) {
                    error("describe topic: partition " + info.partition() + " has "
                            + info.replicas().size() + " replicas, expected " + REPLICATION_FACTOR);
                }
                if (info.isr().size() != REPLICATION_FACTOR) {
                    error("describe topic: partition " + info.partition() + " has "
                            + info.isr().size() + " in-sync replicas, expected " + REPLICATION_FACTOR);
                }
            }
            failIfErrors("describe topic");
        }
    }

    // ---- 2. produce -------------------------------------------------------

    private Ack[] produce() throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.CLIENT_ID_CONFIG, "sluice-roundtrip-producer");
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        // The client's defaults otherwise: an idempotent producer with five
        // requests in flight, which keeps order per partition.
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30_000);
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60_000);

        Ack[] acks = new Ack[count];
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            List<Future<RecordMetadata>> futures = new ArrayList<>(count);
            for (int i = 0; i < count; i++) {
                futures.add(producer.send(new ProducerRecord<>(topic, key(i), value(i))));
            }
            producer.flush();
            for (int i = 0; i < count; i++) {
                RecordMetadata md;
                try {
                    md = futures.get(i).get(OP_TIMEOUT_S, TimeUnit.SECONDS);
                } catch (ExecutionException e) {
                    throw new CheckFailed("produce: send of record " + i + " (" + key(i) + ", "
                            + value(i) + ") failed: " + unwrap(e), unwrap(e));
                }
                if (!topic.equals(md.topic())) {
                    error("produce: ack for record " + i + " names topic '" + md.topic() + "'");
                }
                if (!md.hasOffset() || md.offset() < 0) {
                    error("produce: ack for record " + i + " has no offset (" + md.offset() + ")");
                }
                int want = expectedPartition(key(i));
                if (md.partition() != want) {
                    error("produce: record " + i + " (" + key(i) + ") went to partition "
                            + md.partition() + ", default partitioner says " + want);
                }
                acks[i] = new Ack(md.partition(), md.offset());
            }
        }
        failIfErrors("produce");

        // Offsets per partition must be 0, 1, 2, ... in send order: the topic
        // is fresh, there is a single idempotent producer (order kept with
        // several requests in flight, and no retry stored twice).
        long[] next = new long[PARTITIONS];
        for (int i = 0; i < count; i++) {
            Ack a = acks[i];
            if (a.partition() < 0 || a.partition() >= PARTITIONS) {
                error("produce: record " + i + " acked on partition " + a.partition());
                continue;
            }
            if (a.offset() != next[a.partition()]) {
                error("produce: record " + i + " acked at partition " + a.partition() + " offset "
                        + a.offset() + ", expected offset " + next[a.partition()]);
            }
            next[a.partition()] = a.offset() + 1;
        }
        failIfErrors("produce offsets");
        return acks;
    }

    // ---- 3. consume -------------------------------------------------------

    private Properties consumerProps() {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, "sluice-roundtrip-consumer");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30_000);
        props.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60_000);
        return props;
    }

    private List<TopicPartition> partitions() {
        List<TopicPartition> tps = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) {
            tps.add(new TopicPartition(topic, p));
        }
        return tps;
    }

    private int consume(Ack[] acks) throws Exception {
        Map<String, Integer> byValue = new HashMap<>();
        for (int i = 0; i < count; i++) {
            byValue.put(value(i), i);
        }
        int[] seen = new int[count];
        Map<String, Integer> lastIndexPerKey = new HashMap<>();
        int consumed = 0;

        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerProps())) {
            List<TopicPartition> tps = partitions();
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            long deadline = System.currentTimeMillis() + CONSUME_TIMEOUT_MS;
            boolean extraPollDone = false;
            while (true) {
                long now = System.currentTimeMillis();
                if (consumed >= count) {
                    // One short extra poll to catch duplicates or stray records.
                    if (extraPollDone) {
                        break;
                    }
                    extraPollDone = true;
                } else if (now >= deadline) {
                    break;
                }
                Duration pollFor = consumed >= count
                        ? Duration.ofMillis(500)
                        : Duration.ofMillis(Math.max(1, Math.min(1000, deadline - now)));
                ConsumerRecords<String, String> records = consumer.poll(pollFor);
                for (ConsumerRecord<String, String> r : records) {
                    consumed++;
                    String where = "partition " + r.partition() + " offset " + r.offset();
                    if (!topic.equals(r.topic())) {
                        error("consume: record at " + where + " has topic '" + r.topic() + "'");
                    }
                    Integer i = r.value() == null ? null : byValue.get(r.value());
                    if (i == null) {
                        error("consume: unexpected value " + quote(r.value()) + " at " + where);
                        continue;
                    }
                    seen[i]++;
                    if (seen[i] > 1) {
                        error("consume: " + value(i) + " read " + seen[i] + " times (again at " + where + ")");
                    }
                    if (!key(i).equals(r.key())) {
                        error("consume: " + value(i) + " has key " + quote(r.key()) + ", expected "
                                + key(i));
                    }
                    Ack a = acks[i];
                    if (r.partition() != a.partition() || r.offset() != a.offset()) {
                        error("consume: " + value(i) + " read at " + where + ", producer ack said partition "
                                + a.partition() + " offset " + a.offset());
                    }
                    String k = key(i);
                    Integer last = lastIndexPerKey.get(k);
                    if (last != null && last >= i) {
                        error("consume: " + k + " out of order: " + value(i) + " after " + value(last));
                    }
                    lastIndexPerKey.put(k, i);
                }
            }
        }

        int missing = 0;
        int firstMissing = -1;
        for (int i = 0; i < count; i++) {
            if (seen[i] == 0) {
                if (missing == 0) {
                    firstMissing = i;
                }
                missing++;
            }
        }
        if (missing > 0) {
            error("consume: " + missing + " of " + count + " values never read (first: "
                    + value(firstMissing) + "); consumed " + consumed + " records in total");
        }
        if (consumed != count) {
            error("consume: read " + consumed + " records, expected exactly " + count);
        }
        failIfErrors("consume");
        return consumed;
    }

    private static String quote(String s) {
        return s == null ? "null" : "'" + s + "'";
    }

    // ---- 4. ListOffsets ---------------------------------------------------

    private void checkListOffsets(Ack[] acks) throws Exception {
        long[] perPartition = new long[PARTITIONS];
        for (Ack a : acks) {
            perPartition[a.partition()]++;
        }
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerProps())) {
            List<TopicPartition> tps = partitions();
            Duration timeout = Duration.ofSeconds(OP_TIMEOUT_S);
            Map<TopicPartition, Long> end = consumer.endOffsets(tps, timeout);
            Map<TopicPartition, Long> begin = consumer.beginningOffsets(tps, timeout);
            long sum = 0;
            for (TopicPartition tp : tps) {
                Long e = end.get(tp);
                Long b = begin.get(tp);
                if (e == null) {
                    error("list offsets: no end offset for " + tp);
                } else {
                    sum += e;
                    if (e != perPartition[tp.partition()]) {
                        error("list offsets: end offset of " + tp + " is " + e + ", expected "
                                + perPartition[tp.partition()] + " (records acked there)");
                    }
                }
                if (b == null) {
                    error("list offsets: no beginning offset for " + tp);
                } else if (b != 0L) {
                    error("list offsets: beginning offset of " + tp + " is " + b + ", expected 0");
                }
            }
            if (sum != count) {
                error("list offsets: end offsets sum to " + sum + ", expected " + count
                        + " (end offsets: " + new TreeMap<>(toPartitionMap(end)) + ")");
            }
        }
        failIfErrors("list offsets");
    }

    private static Map<Integer, Long> toPartitionMap(Map<TopicPartition, Long> m) {
        Map<Integer, Long> out = new HashMap<>();
        m.forEach((tp, v) -> out.put(tp.partition(), v));
        return out;
    }
}
