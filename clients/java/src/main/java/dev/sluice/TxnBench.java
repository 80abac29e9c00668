package dev.sluice;

import java.util.Arrays;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Transactional produce throughput and latency with the Java client (its
 * defaults, a transactional.id and linger.ms=5): transactions of PER_TXN
 * records of SIZE bytes, each committed before the next begins, until
 * RECORDS are sent. Used by bench/run.py.
 *
 * <p>Usage: {@code java -cp JAR dev.sluice.TxnBench BOOTSTRAP TOPIC RECORDS PER_TXN SIZE}
 *
 * <p>Prints one JSON line: throughput, the acknowledgement latency of the
 * records and the commit latency of the transactions (commitTransaction,
 * which flushes the transaction's records and ends it).
 */
public final class TxnBench {
    private TxnBench() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: TxnBench BOOTSTRAP TOPIC RECORDS PER_TXN SIZE");
            System.exit(2);
        }
        String bootstrap = args[0];
        String topic = args[1];
        int records = Integer.parseInt(args[2]);
        int perTxn = Integer.parseInt(args[3]);
        int size = Integer.parseInt(args[4]);

        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "txn-bench-" + topic);
        props.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        byte[] value = new byte[size];
        Arrays.fill(value, (byte) 'x');
        long[] acks = new long[records];
        AtomicLong acked = new AtomicLong();
        AtomicLong failed = new AtomicLong();
        long[] commits = new long[(records + perTxn - 1) / perTxn];
        int transactions = 0;
        long started;
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
            started = System.nanoTime();
            int sent = 0;
            while (sent < records) {
                producer.beginTransaction();
                int end = Math.min(records, sent + perTxn);
                for (; sent < end; sent++) {
                    long sentAt = System.nanoTime();
                    producer.send(new ProducerRecord<>(topic, value), (metadata, e) -> {
                        if (e != null) {
                            failed.incrementAndGet();
                            return;
                        }
                        long index = acked.getAndIncrement();
                        if (index < acks.length) {
                            acks[(int) index] = (System.nanoTime() - sentAt) / 1000;
                        }
                    });
                }
                long committing = System.nanoTime();
                producer.commitTransaction();
                commits[transactions++] = (System.nanoTime() - committing) / 1000;
            }
        }
        double seconds = (System.nanoTime() - started) / 1e9;
        int ackedCount = (int) Math.min(acked.get(), acks.length);
        long bytes = (long) ackedCount * size;
        System.out.printf(
                "{\"kind\":\"produce\",\"records\":%d,\"bytes\":%d,\"seconds\":%.3f,"
                        + "\"records_per_sec\":%.0f,\"mb_per_sec\":%.2f,\"failed\":%d,"
                        + "\"ack_latency\":%s,\"transactions\":%d,\"commit_latency\":%s}%n",
                ackedCount, bytes, seconds, ackedCount / seconds, bytes / seconds / 1e6,
                failed.get(), percentiles(Arrays.copyOf(acks, ackedCount)), transactions,
                percentiles(Arrays.copyOf(commits, transactions)));
    }

    private static String percentiles(long[] micros) {
        if (micros.length == 0) {
            return "null";
        }
        Arrays.sort(micros);
        return String.format("{\"p50_us\":%d,\"p99_us\":%d,\"p999_us\":%d,\"max_us\":%d}",
                at(micros, 0.50), at(micros, 0.99), at(micros, 0.999), micros[micros.length - 1]);
    }

    private static long at(long[] sorted, double q) {
        int rank = (int) Math.ceil(sorted.length * q);
        return sorted[Math.max(1, Math.min(rank, sorted.length)) - 1];
    }
}
