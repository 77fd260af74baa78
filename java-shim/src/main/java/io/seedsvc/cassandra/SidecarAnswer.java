package io.seedsvc.cassandra;

import java.util.Collections;
import java.util.List;

/**
 * An HTTP answer from the sidecar, as received. Interpretation (is this a usable list?) is in
 * {@link #seeds(SeedListParser.MalformedEntryListener)} so every caller applies the same rules.
 */
final class SidecarAnswer
{
    final int status;
    final String body;
    /** {@code X-Seedsvc-Generation}, or {@code null} if absent or not a number. */
    final Long generation;
    /** {@code Retry-After} in seconds, or {@code null} if absent or not delta-seconds. */
    final Long retryAfterSeconds;

    SidecarAnswer(int status, String body, Long generation, Long retryAfterSeconds)
    {
        this.status = status;
        this.body = body == null ? "" : body;
        this.generation = generation;
        this.retryAfterSeconds = retryAfterSeconds;
    }

    /**
     * @return the IP-literal seeds of a 200 answer, malformed entries skipped; empty for any other
     *         status and for a 200 with no valid entry (the sidecar promises never to send an
     *         empty 200, but an empty list must never reach Cassandra either way)
     */
    List<SeedEntry> seeds(SeedListParser.MalformedEntryListener listener)
    {
        if (status != 200)
            return Collections.emptyList();
        return SeedListParser.parse(body, false, listener);
    }

    /** A short description for log lines, e.g. {@code HTTP 503}. */
    String summary()
    {
        if (status == 200)
            return body.trim().isEmpty() ? "HTTP 200 with an empty body" : "HTTP 200 without a valid address";
        return "HTTP " + status + (retryAfterSeconds != null ? " (Retry-After " + retryAfterSeconds + "s)" : "");
    }
}
