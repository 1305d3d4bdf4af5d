package dev.medtune.data;

import java.util.List;

/**
 * One MedMCQA record as read, every field as text (null when absent).
 *
 * @param source the file it came from
 * @param row its 1-based position among the file's records
 * @param options opa, opb, opc, opd
 */
record MedMcqaRow(String source, long row, String id, String question, List<String> options,
    String cop, String choiceType, String exp, String subject) {}
