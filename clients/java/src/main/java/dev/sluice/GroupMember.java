package dev.sluice;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.TreeSet;
import java.util.stream.Collectors;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * One member of a consumer group with the official Java client's
 * subscribing consumer, for tests that start, stop and kill members.
 *
 * <p>Usage: {@code java -cp sluice-java-client-tests.jar dev.sluice.GroupMember
 * BOOTSTRAP TOPIC GROUP [default|eager|cooperative|consumer|consumer-range] [INSTANCE_ID]}
 *
 * <p>Client defaults, except: offsets are committed synchronously after each
 * poll that returned records (so that a kill loses no commit it claimed),
 * reading starts at the earliest offset, and the session timeout is 6 s
 * (30 s for a static member).
 * "eager" uses only the RangeAssignor, "cooperative" only the
 * CooperativeStickyAssignor; "consumer" uses the KIP-848 protocol
 * ({@code group.protocol=consumer}, where the broker assigns and the session
 * timeout is the broker's), "consumer-range" the same with the broker's range
 * assignor. INSTANCE_ID makes it a static member
 * ({@code group.instance.id}). Prints, flushed as they happen:
 * {@code REVOKED p,...}, {@code ASSIGNED p,...} (the whole assignment after
 * each change) and {@code RECORD partition offset value}. Runs until killed;
 * SIGTERM closes the consumer first.
 */
public final class GroupMember {
    private GroupMember() {}

    private static String partitions(Collection<TopicPartition> parts) {
        return parts.stream()
                .map(TopicPartition::partition)
                .collect(Collectors.toCollection(TreeSet::new))
                .stream()
                .map(String::valueOf)
                .collect(Collectors.joining(","));
    }

    public static void main(String[] args) {
        if (args.length < 3 || args.length > 5) {
            System.err.println(
                    "usage: GroupMember BOOTSTRAP TOPIC GROUP "
                            + "[default|eager|cooperative|consumer|consumer-range] [INSTANCE_ID]");
            System.exit(2);
        }
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, args[2]);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        String mode = args.length >= 4 ? args[3] : "default";
        if (mode.startsWith("consumer")) {
            props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
            if (mode.equals("consumer-range")) {
                props.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, "range");
            }
        } else {
            // A static member is meant to outlive a restart of its process:
            // give it the time to come back even on a loaded machine.
            props.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, args.length == 5 ? "30000" : "6000");
            props.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500");
        }
        if (args.length == 5) {
            props.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, args[4]);
        }
        if (mode.equals("eager")) {
            props.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, RangeAssignor.class.getName());
        } else if (mode.equals("cooperative")) {
            props.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG,
                    CooperativeStickyAssignor.class.getName());
        }
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(args[1]), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> revoked) {
                    if (!revoked.isEmpty()) {
                        System.out.println("REVOKED " + partitions(revoked));
                        System.out.flush();
                    }
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> assigned) {
                    System.out.println("ASSIGNED " + partitions(consumer.assignment()));
                    System.out.flush();
                }
            });
            // SIGTERM closes the consumer, as an application shutting down
            // does: it leaves the group (a static member of the consumer
            // protocol leaves with epoch -2 and keeps its partitions).
            final Thread main = Thread.currentThread();
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                consumer.wakeup();
                try {
                    main.join(30_000);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }));
            try {
                while (true) {
                    var records = consumer.poll(Duration.ofMillis(200));
                    for (ConsumerRecord<String, String> r : records) {
                        System.out.println("RECORD " + r.partition() + " " + r.offset() + " " + r.value());
                    }
                    System.out.flush();
                    if (!records.isEmpty()) {
                        consumer.commitSync();
                    }
                }
            } catch (WakeupException e) {
                System.out.println("CLOSING");
                System.out.flush();
            }
        }
    }
}
