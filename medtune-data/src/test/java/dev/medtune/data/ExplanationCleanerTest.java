package dev.medtune.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Both cleaners on real MedMCQA explanations (src/test/resources/medmcqa), with the expected
 * outputs written by hand after reading each explanation.
 *
 * <p>Each case gives where the cleaned text must start ({@code ""}: nothing is left); since a
 * cleaner removes only leading text from these explanations, the expected output is the original
 * from that point on (stripped for medtune). {@code "="} means the explanation must come out
 * unchanged. The notebook expectation is given where its rules damage the text or leave the
 * restated answer in.
 */
class ExplanationCleanerTest {

  record Case(String id, String medtune, String notebook) {}

  static final List<Case> REAL = List.of(
      // "Ans. is 'x' i.e., answer" then text
      new Case("e6c29c8b-af47-4dd6-8154-663358bed3b8", "Glycoproteins lIb / IIIa inhibitorso The",
          "Prasugrel Glycoproteins lIb"),
      new Case("fec423fb-be98-40a8-a9f3-477f6e7555f4", "", "Anti psychotics"),
      new Case("6c5c0933-9307-485a-a14b-305f77c287ef",
          "Uricosuric drugs are probenacid, sulfinpyrazone and benzbromarone.",
          "Probenecid Uricosuric drugs"),
      new Case("c6e0048e-68f8-493d-8bdf-bcd1afea8f1e", "", "Polar to less polar"),
      new Case("7a834eac-011c-46e0-8580-ea4dde20b332", "o Sweating and palpitations suggest", null),
      new Case("7450511e-382a-4dcf-8432-99316daafe96", "Magaldrate: Magaldrateis a common", null),
      new Case("8d7ab965-4d7f-4dc9-a4b4-44bbc7334175", "Sulfonylurease provoke a brisk", null),
      // the answer text differs from the option ("organism" vs "things"): kept, not cut
      new Case("94ba87f0-bd34-460a-b611-f816dfefea3b",
          "Weakest acid found in living organism Heparin is", null),
      new Case("5fb4705e-3b44-41da-ad08-25688404bdab", "epinephrine injection Urticaria", null),
      new Case("11c4dd07-1c91-47b8-8b9f-f9182ac9e5b1", "IL-1 antagonisto Anakinra is", null),
      // "Ans. is d i.e." (bare letter): the notebook leaves "is d i.e.," behind
      new Case("f31e136f-03b2-4c6c-ac9a-1b44363e8c93", "Drug causing hypeension Cocaine",
          "is d i.e., Levodopa Drug causing"),
      // "Ans. A: answer", "Ans. B (answer)", "Ans: a (answer)", "Ans. (a) answerRef."
      new Case("041f5188-7539-4b9a-8784-b7ebf0f10021", "Metoprolol is cardioselective beta",
          "A: Is more potent in blocking beta-1 receptors Metoprolol"),
      new Case("a4678614-75be-4cbe-8d71-aef897f838d4", "Tobramycin works by binding", null),
      new Case("6c222a4a-e7b4-49f9-a9ee-e09f8545f7df", "\"Gastric mucosal damageQ",
          "B (Acetaminophen) \"Gastric"),
      new Case("98dce37e-30db-461f-81bd-8fc6e3c21dca", "Ref: KDT, 6th ed, p. 484*", null),
      new Case("a5b2e089-3e8a-490a-9387-74687302149f", "Ref. Katzung's pharmacology 10th", null),
      new Case("00200901-085f-4abe-a7ed-b424b0650f1b", "(Ref: Goodman Gilman 12/e p868", null),
      // "ANSWER: (A) Penicillin GREF:" -- the answer glued to an upper-case REF
      new Case("59d4556e-ea0b-4b7c-8dd5-d7f02333ae84", "REF: Microbiology, Volume 2",
          "Penicillin GREF: Microbiology"),
      // "Ans. B. answer" glued to the next sentence
      new Case("3c5f5bd3-3837-4d04-a563-59fc07cbd6c6", "Acetylation by N-acetyl transferases",
          "B. MetoclopramideAcetylation"),
      new Case("84d89a4f-db04-402d-88ab-ca39f6eee8bd", "Ref: Ganong 25Ie p656, 24Ie p658)Rhythmic",
          "B. Pre-Botzinger complexRef: Ganong"),
      new Case("72c1c5e0-b64f-4eef-bf22-ecfb60c5c19c", "Low insulin to glucagon ratio", null),
      new Case("17360c6c-2c98-4fe2-aa85-487dcf4678df", "Tropicamide is the shoest acting", null),
      new Case("7697c864-514c-4a73-8ce4-ea6cf0d0b651", "The NT scan must be done", null),
      new Case("849b1909-c988-4d0b-8eaf-a716707cbe97", "Division does not give branches", null),
      new Case("b9546516-2a4a-4179-a956-60d0387bf11f", "Hemodialysis-associated amyloidosis",
          null),
      new Case("636a3c09-3bda-40dd-bf94-c497bd39d8f6", "Trimetazidine is not used in hea", null),
      new Case("10919dfe-e40f-43e4-8e85-0a7679238e21", "Pegloticase is a medication for",
          "A. Chronic Gout* Pegloticase"),
      // glued to a digit or a lower-case word: the boundary is unsure, the text stays
      new Case("7111d7b2-7e80-4e23-b5d0-9f42595c6a80", "1, decreases2,3-BPG binds to", null),
      new Case("6b4abfdd-bcd7-4f10-aa75-124aadf5fcd0", "18500 mg/ 5 ml means", null),
      new Case("87fab9d2-9419-49c1-93bf-59d0a311e8de", "Linagliptinlinagliptin has the", null),
      new Case("90a1a7e3-3ff3-4653-8d13-3de6811b4eca", "Beta-1 and beta-2 agonistBeta-1", null),
      // "Ans. a. answer (Ref", "Ans: A(Ref", "Ans: D .answer(Ref", "Answer: . B. answer >2"
      new Case("b1cc4ab0-a82c-437a-88c2-00953f3618ff", "(Ref: Harrison 19/e p163", null),
      new Case("90481eeb-fa12-4a3d-8348-dd3f1758167c", "(Ref: Harper 30/c 1)1880)Acetyl", null),
      new Case("100d2a31-8f28-4500-99c9-67690fe15625", "(Ref: Goodman Gilman 13/e p108", null),
      new Case("26a95f8b-cbdd-4e14-b3fc-fcf2b9efbd20", ">2 years (Ref Goodman", null),
      new Case("aadafd4c-cb37-460b-8e6f-28f42d01dd60", "(Ref-YANNOFF 3/E PG,1052-1055)", null),
      new Case("53859b89-21cf-4b09-a595-6c48293c2093", "Used in secretory diarrhoea (Ref", null),
      new Case("9bad2095-2dd9-4485-946a-4ef51d16e8a4", "Basal degeneration", null),
      // "Ans-a.", "Answer- A (answer)", "Answer- a (answer)" alone, "Ans. D. All" alone
      new Case("b944ada9-d776-4c2a-9180-3ae5f393f72d", "Guyton I LpJ1 4-.;anong", null),
      new Case("e845e625-845e-4d02-ab3f-e00f2284d62e", "(Ref: BDC 5/e Vol lII/p238)Complete",
          null),
      new Case("45ea4d89-40f7-42af-8f94-b4dc1e9a5466", "", null),
      new Case("f6829756-2e11-47cb-85a8-3ba40ecb3332", "", null),
      // "Ans: C i.e. answer" (the text misspells the answer: kept)
      new Case("ee55a9bc-62bb-4952-957a-1902ff5b4376", "HypnoziteMalariaIn malaria", null),
      // bare "Ans." / "Ans. is" before text that is no letter
      new Case("6b4bcf23-327e-462a-8d79-d800eaff5e89", "None o Patients who receive", null),
      new Case("3f414e9c-fdea-4bc4-9d1c-4c270fb37639", "All are true about digoxin toxicity.",
          null),
      new Case("50cb0de0-10bf-4040-adbe-047f0ab6fbad", "flupenthisol. The antidepressive", null),
      // "(answer)" opening the explanation
      new Case("c8025448-c143-4985-bc62-6f4497321667", "(601-KDT6th)* WARFARIN - It crosses",
          "601-KDT6th)* WARFARIN"),
      new Case("e1cf7219-d88d-46d2-b1bb-5b1ee155fa99", "Ref: 463-KDT (514-KDT 6th)Treatment",
          "Lignocaine): Ref: 463-KDT"),
      new Case("e1a6bd20-0da6-47b4-9f16-bca48ed0f609", "(381 -- KDT 7th edition", null),
      // no prefix: medtune keeps every word; the notebook loses the first word, and with
      // ^[a-dA-D]* the first letters of "All", "Cisplatin", "Dopamine", "Butorphanol" first
      new Case("9587b40f-5950-423e-aaa2-7a05f813f832", "=", "and valproate are the drugs"),
      new Case("08531c7b-c9f3-49f2-a8f2-e64ac23974e7", "=", "can be given as s.c (0.25mg)"),
      new Case("1815507f-a0d9-4c6a-a954-8e44adbac33e", "=", "de pointes (polymorphic"),
      new Case("7842833c-724b-42e9-988f-9a546ef012bc", "=", "of the above Rapid lowering"),
      new Case("591db8ae-5677-413e-af48-48e4111b7dbc", "=", "thiazide, furosemide) by causing"),
      new Case("b59118d8-34fc-4814-935c-523da1791c48", "=", "DA):- It is a dopaminergic"),
      new Case("d3d67009-2921-4da2-9482-bd1a5cc49538", "=", "can cause ototoxicity"),
      new Case("2ef82f67-4906-4d5c-b65f-2edb36068c75", "=", "is full agonist at kappa"),
      new Case("87d8663f-e0cd-4766-87b7-5312dfc4cd62", "=", "thermal contraction mismatch"),
      new Case("5988b3d1-c438-4d16-a887-979dac8bbd10", "=", "Mesiobuccal <Palatal"),
      new Case("c35aba8a-eb2e-44e5-8383-5b92cce06d2c", "=", "partial\u00a0seizures\u00a0(CPS"),
      new Case("dc3b4878-5fcb-4cd0-b31d-594a5320655a", "=", "blockers in hea failure"),
      new Case("18d5c4a1-cb81-41a8-9bfc-b6f7dec431d2", "=", "A- Broad QRS complex"),
      new Case("5f8a32c1-31db-477e-99cd-467e1f443720", "=", "Rifampicin"));

  static Stream<Arguments> real() {
    return REAL.stream().map(c -> Arguments.of(c.id(), c));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("real")
  void realExplanations(String id, Case c) throws Exception {
    Samples.Sample s = Samples.byId().get(id);
    assertTrue(s != null, "no sample row " + id);
    String medtune = new AnswerRestatementCleaner().clean(s.exp(), s.options(), s.cop());
    assertEquals(expected(s.exp(), c.medtune()).strip(), medtune, "medtune cleaner");
    if (c.notebook() != null) {
      String notebook = new NotebookCleaner().clean(s.exp(), s.options(), s.cop());
      assertEquals(expected(s.exp(), c.notebook()), notebook, "notebook cleaner");
    }
  }

  private static String expected(String original, String head) {
    if (head.equals("=")) {
      return original;
    }
    if (head.isEmpty()) {
      return "";
    }
    int at = original.indexOf(head);
    assertTrue(at >= 0, "the expected start '" + head + "' is not in the explanation");
    return original.substring(at);
  }

  @Test
  void coversAtLeastFortyDistinctRealExplanations() {
    Set<String> ids = new HashSet<>();
    REAL.forEach(c -> ids.add(c.id()));
    assertTrue(ids.size() >= 40, "only " + ids.size());
    assertEquals(REAL.size(), ids.size(), "a case is listed twice");
  }

  /** Every prefix form of seed-facts.md, on text of our own where the samples lack the form. */
  @ParameterizedTest(name = "{0}")
  @MethodSource("prefixForms")
  void prefixForms(String explanation, int cop, String expected) {
    List<String> options = List.of("Thiazides", "Loop diuretics", "Mite", "Spironolactone");
    assertEquals(expected, new AnswerRestatementCleaner().clean(explanation, options, cop));
  }

  static Stream<Arguments> prefixForms() {
    String t = "Potassium is spared.";
    return Stream.of(
        Arguments.of("Ans) D " + t, 3, t),
        Arguments.of("Ans) D Spironolactone " + t, 3, t),
        Arguments.of("Ans : D " + t, 3, t),
        Arguments.of("Answer is D " + t, 3, t),
        Arguments.of("Answer is D", 3, ""),
        Arguments.of("Ans is 'd' i.e. Spironolactone " + t, 3, t),
        Arguments.of("Answer- D. Spironolactone" + t, 3, t),
        Arguments.of("Ans: (d) " + t, 3, t),
        Arguments.of("Ans, is 'd' " + t, 3, t),
        Arguments.of("ANS. D " + t, 3, t),
        Arguments.of("Ans. (c) Mite", 2, ""),
        Arguments.of("Ans. is 'c' Mite Scabies is caused by a mite.", 2,
            "Scabies is caused by a mite."),
        // seed-facts' own examples of the notebook's intent
        Arguments.of("C i.e. Mite", 2, ""),
        Arguments.of("C i.e. Mite Sarcoptes scabiei is a mite.", 2, "Sarcoptes scabiei is a mite."),
        Arguments.of("C. Mite Sarcoptes scabiei is a mite.", 2, "Sarcoptes scabiei is a mite."),
        // a letter that starts the text but restates nothing stays
        Arguments.of("C. difficile causes colitis after antibiotics.", 2,
            "C. difficile causes colitis after antibiotics."),
        Arguments.of("A drug that spares potassium is spironolactone.", 0,
            "A drug that spares potassium is spironolactone."),
        Arguments.of("Answer depends on potassium: spironolactone spares it.", 3,
            "Answer depends on potassium: spironolactone spares it."),
        Arguments.of("Ans. a drug that spares potassium.", 0, "a drug that spares potassium."),
        // an answer that is only the start of a longer word is not removed
        Arguments.of("Ans. C Mites are arthropods.", 2, "Mites are arthropods."),
        Arguments.of("Chronic use of thiazides lowers potassium.", 0,
            "Chronic use of thiazides lowers potassium."));
  }

  @Test
  void notebookCutsTheMiddleOfASentenceWithAnsInIt() {
    // constructed from the notebook's greedy unanchored "Ans.*" pattern
    String s = "Thiazides cause hypokalemia. Answers (a) and (b) are wrong as both raise potassium.";
    List<String> options = List.of("Thiazides", "Amiloride", "Triamterene", "Spironolactone");
    assertEquals("cause hypokalemia.  are wrong as both raise potassium.",
        new NotebookCleaner().clean(s, options, 0));
    assertEquals(s, new AnswerRestatementCleaner().clean(s, options, 0));
  }

  @Test
  void countsRowsChangedPerRuleAndLettersThatDisagreeWithCop() throws Exception {
    AnswerRestatementCleaner m = new AnswerRestatementCleaner();
    List<String> options = List.of("Thiazides", "Loop diuretics", "Mite", "Spironolactone");
    m.clean("Ans. is 'a' i.e. Spironolactone spares potassium.", options, 3);
    m.clean("Ans: D. SpironolactoneRef: KDT", options, 3);
    m.clean("(Spironolactone) spares potassium.", options, 3);
    m.clean("  Spironolactone spares potassium.", options, 3);
    long[] n = m.changedCounts();
    assertEquals(List.of(2L, 0L, 2L, 1L, 1L), List.of(n[0], n[1], n[2], n[3], n[4]));
    assertEquals(1, m.letterNotCop());

    NotebookCleaner nb = new NotebookCleaner();
    List<Long> expected = new ArrayList<>(List.of(0L, 0L, 0L, 0L, 0L, 0L, 0L, 0L));
    nb.clean("Chronic", options, 0); // ^[a-dA-D]* only
    expected.set(3, 1L);
    nb.clean(" x y", options, 0); // ^\s, then ^\S*\s
    expected.set(0, 1L);
    expected.set(4, 1L);
    List<Long> got = new ArrayList<>();
    for (long v : nb.changedCounts()) {
      got.add(v);
    }
    assertEquals(expected, got);
  }
}
