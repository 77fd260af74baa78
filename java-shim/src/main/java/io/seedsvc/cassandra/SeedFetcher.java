package io.seedsvc.cassandra;

import java.io.IOException;

/**
 * One request to the seedsvc sidecar's {@code GET /seeds}. The seam that tests replace; the
 * production implementation is {@link HttpSeedFetcher}.
 *
 * <p>Implementations must bound every call: a call returns or throws within its request timeout
 * ({@code request_timeout_ms}) plus {@code waitSeconds}, however slowly the server answers.
 */
interface SeedFetcher
{
    /**
     * @param knownGeneration the generation the caller already has, or {@code null} if none; with
     *                        {@code waitSeconds > 0} the sidecar holds the request until the
     *                        generation moves past it (long-poll)
     * @param waitSeconds     0 for an immediate answer
     * @return the sidecar's answer, whatever its status
     * @throws IOException when no complete HTTP answer was received (refused, timed out, reset, cut
     *                     short, too large)
     */
    SidecarAnswer fetch(Long knownGeneration, int waitSeconds) throws IOException;

    /** Where the seeds come from, for log lines and the start-up failure message. */
    String describe();

    /**
     * Aborts requests in flight (a long-poll may otherwise hold its thread for the whole wait) and
     * makes later calls fail. Idempotent.
     */
    void close();
}
