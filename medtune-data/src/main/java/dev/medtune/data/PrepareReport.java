package dev.medtune.data;

import java.nio.file.Path;
import java.util.List;

/**
 * What a {@code prepare} run did, for the summary a command prints; the full account is
 * {@code report.json} in the output folder.
 *
 * @param lines one line per stage: the stage, the rows it removed or produced, and what they are
 */
public record PrepareReport(Path output, List<Line> lines, long train, long val, long rejected) {

  /** One stage of the summary. */
  public record Line(String stage, long rows, String what) {}
}
