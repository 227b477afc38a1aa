package cn.workerfile.example;

import cn.workerfile.Notice;
import cn.workerfile.ServiceEvent;
import cn.workerfile.SubsidyGrant;
import cn.workerfile.WorkerFileChange;

/**
 * The human lines of `workerfile subscribe` ({@code streams.subscribe.describe}), and the
 * ids it deduplicates by within a run ({@code message_id}), for the same messages.
 */
final class Lines {
  private Lines() {}

  /** {@code schemas.identity.mask_ssn}: 110105********002X; never the whole number. */
  static String maskSsn(String value) {
    String text = value == null ? "" : pythonStrip(value);
    int[] cps = text.codePoints().toArray();
    int n = cps.length;
    if (n == 18) {
      return slice(cps, 0, 6) + "*".repeat(8) + slice(cps, 14, 18);
    }
    if (n == 15) {
      return slice(cps, 0, 6) + "*".repeat(6) + slice(cps, 12, 15);
    }
    if (n <= 4) {
      return "*".repeat(n);
    }
    return slice(cps, 0, 2) + "*".repeat(n - 4) + slice(cps, n - 2, n);
  }

  private static String slice(int[] cps, int from, int to) {
    return new String(cps, from, to - from);
  }

  /** Python's str.strip(): white space as str.isspace() (bidirectional WS, B, S, or Zs). */
  private static String pythonStrip(String text) {
    int[] cps = text.codePoints().toArray();
    int start = 0;
    int end = cps.length;
    while (start < end && isPythonSpace(cps[start])) {
      start++;
    }
    while (end > start && isPythonSpace(cps[end - 1])) {
      end--;
    }
    return new String(cps, start, end - start);
  }

  private static boolean isPythonSpace(int cp) {
    return Character.isWhitespace(cp) || Character.isSpaceChar(cp) || cp == 0x85;
  }

  /** A truthy Python string: not null and not empty. */
  private static boolean truthy(String text) {
    return text != null && !text.isEmpty();
  }

  static String describe(ServiceEvent message) {
    String who = maskSsn(message.getSsn());
    String change = truthy(message.getStatus()) ? message.getStatus() : "offered";
    if (truthy(message.getStatusBefore())) {
      change = message.getStatusBefore() + " -> " + change;
    }
    String service = message.getService().name();
    if ("notice".equals(service)) {
      Notice n = message.getNotice();
      return "notice " + n.getCode().name() + " for " + who + ": employer " + n.getEmployer() + " since "
          + n.getSince() + " (" + change + ")";
    }
    SubsidyGrant g = message.getGrant();
    String amount = g.getAmountCny() != 0 ? ", " + g.getAmountCny() + " CNY" : "";
    return "grant " + service + " for " + who + ": " + g.getOccupationCode() + " " + g.getLevel().name() + amount
        + ", certificate " + g.getCertificateNo() + ", apply by " + g.getApplyBy() + ", " + change
        + " (service_id " + message.getServiceId() + ")";
  }

  static String describe(WorkerFileChange message) {
    return "change of " + maskSsn(message.getSsn()) + " v" + message.getVersion() + ": "
        + String.join(", ", message.getChangedSections()) + " (" + message.getEventIds().size() + " events)";
  }

  /** What identifies a message for deduplication, as {@code streams.subscribe.message_id}. */
  static String messageId(ServiceEvent message) {
    if (message.getStatus() == null) {
      return message.getServiceId();
    }
    Long version = message.getVersion();
    return message.getServiceId() + "|" + message.getStatus() + "|v" + (version == null ? "None" : version);
  }

  static String messageId(WorkerFileChange message) {
    return message.getSsn() + "|" + message.getVersion();
  }
}
