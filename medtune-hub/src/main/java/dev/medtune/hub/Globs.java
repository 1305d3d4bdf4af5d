package dev.medtune.hub;

import java.util.List;
import java.util.regex.Pattern;

/**
 * {@code --include}/{@code --exclude} patterns with the Python client's meaning
 * ({@code utils/_paths.py filter_repo_objects}): {@code fnmatch}, where {@code *} also matches
 * {@code /}, and a pattern ending in {@code /} means everything under that folder.
 */
final class Globs {
  private Globs() {}

  static boolean keep(String path, List<String> includes, List<String> excludes) {
    if (includes != null && !includes.isEmpty() && includes.stream().noneMatch(g -> matches(g, path))) {
      return false;
    }
    return excludes == null || excludes.stream().noneMatch(g -> matches(g, path));
  }

  static boolean matches(String glob, String path) {
    String g = glob.endsWith("/") ? glob + "*" : glob;
    return toRegex(g).matcher(path).matches();
  }

  /** Python's {@code fnmatch.translate}: {@code *}, {@code ?}, {@code [seq]}, {@code [!seq]}. */
  static Pattern toRegex(String glob) {
    StringBuilder re = new StringBuilder();
    int n = glob.length();
    for (int i = 0; i < n; i++) {
      char c = glob.charAt(i);
      switch (c) {
        case '*' -> re.append(".*");
        case '?' -> re.append('.');
        case '[' -> {
          int j = i + 1;
          if (j < n && glob.charAt(j) == '!') {
            j++;
          }
          if (j < n && glob.charAt(j) == ']') {
            j++;
          }
          while (j < n && glob.charAt(j) != ']') {
            j++;
          }
          if (j >= n) {
            re.append("\\[");
          } else {
            String body = glob.substring(i + 1, j).replace("\\", "\\\\");
            if (body.startsWith("!")) {
              body = "^" + body.substring(1);
            } else if (body.startsWith("^")) {
              body = "\\" + body;
            }
            re.append('[').append(body).append(']');
            i = j;
          }
        }
        default -> re.append(Pattern.quote(String.valueOf(c)));
      }
    }
    return Pattern.compile(re.toString(), Pattern.DOTALL);
  }
}
