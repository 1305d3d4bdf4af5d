package dev.medtune.hub;

import java.util.List;

/**
 * What {@link HubClient#push} did.
 *
 * @param commitUrl the new commit's page, or null when nothing changed and no commit was made
 * @param uploaded the files sent in this commit (new or changed)
 * @param unchanged the files the hub already had with the same content
 * @param lfsBytesSent bytes sent to LFS storage (0 when the hub had every large file already)
 */
public record PushResult(String commitUrl, String commitOid, List<String> uploaded, List<String> unchanged,
    long lfsBytesSent) {}
