package dev.medtune.model.train;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.geom.AffineTransform;
import java.awt.geom.Ellipse2D;
import java.awt.geom.Path2D;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;

/**
 * {@code OUT/loss.png}: training loss per optimizer step and eval loss where measured, drawn with
 * Java2D off screen (headless) and written by ImageIO: axes with "nice" ticks (1, 2, 5 x 10^k),
 * grid, axis labels, a legend and a title. Needs a font on the machine (any; DejaVu on Linux).
 */
public final class LossPlot {
  private static final int W = 960;
  private static final int H = 600;
  private static final int LEFT = 90;
  private static final int RIGHT = 30;
  private static final int TOP = 60;
  private static final int BOTTOM = 70;
  private static final Color TRAIN = new Color(31, 119, 180);
  private static final Color EVAL = new Color(230, 120, 20);

  private LossPlot() {}

  /** Writes the plot atomically; at least one curve must have a point. */
  public static void write(Path png, String title, List<MetricsLog.Point> train, List<MetricsLog.Point> eval) {
    if (System.getProperty("java.awt.headless") == null) {
      System.setProperty("java.awt.headless", "true"); // no display needed, none used
    }
    BufferedImage img = render(title, train, eval);
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try {
      if (!ImageIO.write(img, "png", bytes)) {
        throw new IOException("no PNG writer");
      }
    } catch (IOException e) {
      throw new UncheckedIOException(png + ": cannot encode the plot: " + e.getMessage(), e);
    }
    dev.medtune.model.Json.writeAtomically(png, bytes.toByteArray());
  }

  static BufferedImage render(String title, List<MetricsLog.Point> train, List<MetricsLog.Point> eval) {
    List<MetricsLog.Point> all = new ArrayList<>(train);
    all.addAll(eval);
    all.removeIf(p -> !Double.isFinite(p.value()));
    if (all.isEmpty()) {
      throw new IllegalArgumentException("nothing to plot: no finite loss values");
    }
    double xMin = all.stream().mapToLong(MetricsLog.Point::step).min().orElseThrow();
    double xMax = all.stream().mapToLong(MetricsLog.Point::step).max().orElseThrow();
    double yMin = all.stream().mapToDouble(MetricsLog.Point::value).min().orElseThrow();
    double yMax = all.stream().mapToDouble(MetricsLog.Point::value).max().orElseThrow();
    double[] xt = ticks(Math.min(xMin, 0), Math.max(xMax, xMin + 1), 8, true);
    // a flat curve (or one point) still gets a readable range around it
    double pad = Math.max((yMax - yMin) * 0.05, 0.05 * Math.max(Math.abs(yMax), 1e-3));
    double[] yt = ticks(Math.max(0, yMin - pad), yMax + pad, 7, false);
    double x0 = xt[0];
    double x1 = xt[xt.length - 1];
    double y0 = yt[0];
    double y1 = yt[yt.length - 1];
    int pw = W - LEFT - RIGHT;
    int ph = H - TOP - BOTTOM;

    BufferedImage img = new BufferedImage(W, H, BufferedImage.TYPE_INT_RGB);
    Graphics2D g = img.createGraphics();
    g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
    g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
    g.setRenderingHint(RenderingHints.KEY_STROKE_CONTROL, RenderingHints.VALUE_STROKE_PURE);
    g.setColor(Color.WHITE);
    g.fillRect(0, 0, W, H);
    Font base = new Font(Font.SANS_SERIF, Font.PLAIN, 14);
    g.setFont(base);
    FontMetrics fm = g.getFontMetrics();

    // grid and ticks
    for (double v : xt) {
      int px = LEFT + (int) Math.round((v - x0) / (x1 - x0) * pw);
      g.setColor(new Color(232, 232, 232));
      g.drawLine(px, TOP, px, TOP + ph);
      g.setColor(Color.DARK_GRAY);
      g.drawLine(px, TOP + ph, px, TOP + ph + 6);
      String s = label(v);
      g.drawString(s, px - fm.stringWidth(s) / 2, TOP + ph + 8 + fm.getAscent());
    }
    for (double v : yt) {
      int py = TOP + ph - (int) Math.round((v - y0) / (y1 - y0) * ph);
      g.setColor(new Color(232, 232, 232));
      g.drawLine(LEFT, py, LEFT + pw, py);
      g.setColor(Color.DARK_GRAY);
      g.drawLine(LEFT - 6, py, LEFT, py);
      String s = label(v);
      g.drawString(s, LEFT - 10 - fm.stringWidth(s), py + fm.getAscent() / 2 - 1);
    }
    g.setColor(Color.DARK_GRAY);
    g.setStroke(new BasicStroke(1.2f));
    g.drawRect(LEFT, TOP, pw, ph);

    // axis labels and title
    g.setColor(Color.BLACK);
    String xl = "optimizer step";
    g.drawString(xl, LEFT + pw / 2 - fm.stringWidth(xl) / 2, H - 18);
    AffineTransform saved = g.getTransform();
    g.rotate(-Math.PI / 2);
    String yl = "loss (cross-entropy, nats/token)";
    g.drawString(yl, -(TOP + ph / 2) - fm.stringWidth(yl) / 2, 24);
    g.setTransform(saved);
    g.setFont(base.deriveFont(Font.BOLD, 17f));
    FontMetrics tfm = g.getFontMetrics();
    g.drawString(title, W / 2 - tfm.stringWidth(title) / 2, 36);
    g.setFont(base);

    // curves
    g.setClip(LEFT, TOP, pw + 1, ph + 1);
    drawCurve(g, train, TRAIN, false, x0, x1, y0, y1, pw, ph);
    drawCurve(g, eval, EVAL, true, x0, x1, y0, y1, pw, ph);
    g.setClip(null);

    // legend
    List<String> names = new ArrayList<>();
    List<Color> colors = new ArrayList<>();
    if (!train.isEmpty()) {
      names.add("training loss");
      colors.add(TRAIN);
    }
    if (!eval.isEmpty()) {
      names.add("eval loss");
      colors.add(EVAL);
    }
    int lw = names.stream().mapToInt(fm::stringWidth).max().orElse(0) + 56;
    int lh = names.size() * 22 + 12;
    int lx = LEFT + pw - lw - 12;
    int ly = TOP + 12;
    g.setColor(new Color(255, 255, 255, 230));
    g.fillRect(lx, ly, lw, lh);
    g.setColor(Color.GRAY);
    g.drawRect(lx, ly, lw, lh);
    for (int i = 0; i < names.size(); i++) {
      int cy = ly + 17 + i * 22;
      g.setColor(colors.get(i));
      g.setStroke(new BasicStroke(2.5f));
      g.drawLine(lx + 10, cy, lx + 38, cy);
      if (names.get(i).startsWith("eval")) {
        g.fill(new Ellipse2D.Double(lx + 24 - 4, cy - 4, 8, 8));
      }
      g.setColor(Color.BLACK);
      g.drawString(names.get(i), lx + 46, cy + fm.getAscent() / 2 - 1);
    }
    g.dispose();
    return img;
  }

  private static void drawCurve(Graphics2D g, List<MetricsLog.Point> pts, Color c, boolean markers,
      double x0, double x1, double y0, double y1, int pw, int ph) {
    Path2D.Double path = new Path2D.Double();
    boolean started = false;
    g.setColor(c);
    g.setStroke(new BasicStroke(2.2f, BasicStroke.CAP_ROUND, BasicStroke.JOIN_ROUND));
    for (int i = 0; i < pts.size(); i++) {
      MetricsLog.Point p = pts.get(i);
      boolean isolated = (i == 0 || !Double.isFinite(pts.get(i - 1).value()))
          && (i + 1 == pts.size() || !Double.isFinite(pts.get(i + 1).value()));
      if (!Double.isFinite(p.value())) {
        started = false; // a gap where the loss was not finite
        continue;
      }
      double px = LEFT + (p.step() - x0) / (x1 - x0) * pw;
      double py = TOP + ph - (p.value() - y0) / (y1 - y0) * ph;
      if (started) {
        path.lineTo(px, py);
      } else {
        path.moveTo(px, py);
        started = true;
      }
      if (markers || isolated) { // a lone point would not show as a line
        g.fill(new Ellipse2D.Double(px - 4, py - 4, 8, 8));
      }
    }
    g.draw(path);
  }

  /**
   * Tick values covering [lo, hi]: a step of 1, 2 or 5 times a power of ten giving at most
   * {@code max} intervals (Heckbert, "Nice numbers for graph labels", Graphics Gems, 1990).
   */
  static double[] ticks(double lo, double hi, int max, boolean integers) {
    double span = hi - lo;
    double raw = span / max;
    double mag = Math.pow(10, Math.floor(Math.log10(raw)));
    double step = mag;
    for (double m : new double[] {1, 2, 5, 10}) {
      if (m * mag >= raw) {
        step = m * mag;
        break;
      }
    }
    if (integers) {
      step = Math.max(1, Math.round(step));
    }
    double start = Math.floor(lo / step + 1e-9) * step;
    double end = Math.ceil(hi / step - 1e-9) * step;
    int n = (int) Math.round((end - start) / step) + 1;
    double[] out = new double[Math.max(n, 2)];
    for (int i = 0; i < out.length; i++) {
      out[i] = start + i * step;
    }
    return out;
  }

  private static String label(double v) {
    if (Math.abs(v - Math.rint(v)) < 1e-9) {
      return Long.toString(Math.round(v));
    }
    String s = String.format(java.util.Locale.ROOT, "%.4f", v);
    return s.replaceAll("0+$", "").replaceAll("\\.$", "");
  }
}
