package dev.medtune.cli.eval;

/** A question or example left out of the scores, with why (every one is counted in the report). */
public record Skip(String id, String reason) {}
