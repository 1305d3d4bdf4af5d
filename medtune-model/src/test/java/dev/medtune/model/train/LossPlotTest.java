package dev.medtune.model.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LossPlotTest {
  @TempDir Path tmp;

  /** A curve shaped like the recipe's run: 3.54 at step 1 falling to about 1.5 at step 60. */
  static List<MetricsLog.Point> recipeLike() {
    List<MetricsLog.Point> pts = new ArrayList<>();
    for (int s = 1; s <= 60; s++) {
      pts.add(new MetricsLog.Point(s, 1.45 + 2.09 * Math.exp(-(s - 1) / 12.0) + 0.06 * Math.sin(s * 1.7)));
    }
    return pts;
  }

  @Test
  void drawsAReadablePng() throws Exception {
    Path png = tmp.resolve("loss.png");
    List<MetricsLog.Point> eval = List.of(new MetricsLog.Point(10, 2.6), new MetricsLog.Point(20, 2.0),
        new MetricsLog.Point(30, 1.8), new MetricsLog.Point(40, 1.7), new MetricsLog.Point(50, 1.66),
        new MetricsLog.Point(60, 1.64));
    LossPlot.write(png, "LoRA SFT - tiny", recipeLike(), eval);
    if (System.getenv("MEDTUNE_PLOT_KEEP") != null) { // to look at it: MEDTUNE_PLOT_KEEP=/tmp/loss.png
      java.nio.file.Files.copy(png, Path.of(System.getenv("MEDTUNE_PLOT_KEEP")),
          java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }
    BufferedImage img = ImageIO.read(png.toFile());
    assertEquals(960, img.getWidth());
    assertEquals(600, img.getHeight());
    int blue = 0;
    int orange = 0;
    for (int y = 0; y < img.getHeight(); y++) {
      for (int x = 0; x < img.getWidth(); x++) {
        int rgb = img.getRGB(x, y) & 0xFFFFFF;
        blue += rgb == 0x1F77B4 ? 1 : 0;
        orange += rgb == 0xE67814 ? 1 : 0;
      }
    }
    assertTrue(blue > 500, "training curve drawn: " + blue + " pixels");
    assertTrue(orange > 100, "eval curve drawn: " + orange + " pixels");
  }

  @Test
  void niceTicks() {
    assertArrayEquals(new double[] {0, 10, 20, 30, 40, 50, 60}, LossPlot.ticks(0, 60, 8, true), 1e-12);
    assertArrayEquals(new double[] {1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0}, LossPlot.ticks(1.25, 1.95, 7, false), 1e-12);
    assertArrayEquals(new double[] {0, 1, 2, 3}, LossPlot.ticks(0, 3, 8, true), 1e-12);
    assertArrayEquals(new double[] {1, 1.5, 2, 2.5, 3, 3.5, 4}, LossPlot.ticks(1.35, 3.7, 7, false), 1e-12);
  }

  @Test
  void aSinglePointAndNonFiniteValues() throws Exception {
    BufferedImage img = LossPlot.render("one step", List.of(new MetricsLog.Point(1, 3.5),
        new MetricsLog.Point(2, Double.NaN)), List.of());
    assertEquals(960, img.getWidth());
    int blue = 0;
    for (int y = 60; y < 530; y++) {
      for (int x = 90; x < 700; x++) { // the plot area left of the legend
        blue += (img.getRGB(x, y) & 0xFFFFFF) == 0x1F77B4 ? 1 : 0;
      }
    }
    assertTrue(blue > 20, "the lone point shows: " + blue + " pixels");
    if (System.getenv("MEDTUNE_PLOT_KEEP") != null) {
      javax.imageio.ImageIO.write(img, "png", new java.io.File(System.getenv("MEDTUNE_PLOT_KEEP") + ".one.png"));
    }
    assertThrows(IllegalArgumentException.class, () -> LossPlot.render("x", List.of(), List.of()));
  }
}
