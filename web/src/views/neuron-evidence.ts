/**
 * A neuron's three sides side by side (GET /v1/neurons/{id}/evidence, docs/neuron-evidence.md): the
 * categories that excite it (seeing), the rastered words that excite it (reading), the texts whose
 * attribution W·t it carries most (speaking for); whether they name the same concept (the
 * multimodality measure, with Spearman's ρ between the sides); and its automatic labels, scored.
 * The speaking side also gets a card of its own, in the page's order (reading, then speaking).
 * An answer the API cannot give (no collection, no word index yet) is said in the card.
 */
import { api, ApiError, call, type Ok } from '../api';
import { scoreBars } from '../charts';
import { fill, fmt, h } from '../dom';

type Evidence = Ok<'/v1/neurons/{id}/evidence', 'get'>;
const K = 8;
const SPEAKING = 'Texts it speaks for';

/** The speaking side: the top texts of the text-side index, each opening in the Prompt view. */
function showSpeaking(section: HTMLElement, evidence: Evidence): void {
  const { texts, vocabulary, templates } = evidence.speaking;
  const list = scoreBars(texts.map((item) => ({ name: item.text, value: item.attribution })));
  list.id = 'speaking-texts';
  list.querySelectorAll('.bar-label').forEach((label, i) => {
    const text = texts[i].text;
    label.replaceChildren(h('a', { href: `#/prompt/${encodeURIComponent(text)}` }, text));
  });
  fill(
    section,
    h('h3', null, SPEAKING),
    h(
      'p',
      { class: 'muted' },
      `Its component of W·t/|t| for ${vocabulary} concept texts, averaged over the templates ` +
        `${templates.map((template) => `“${template}”`).join(', ')}: the texts a high activation votes for.`,
    ),
    list,
  );
}

/**
 * Fills `speaking` with the speaking side (the texts it carries most W·t/|t| for, each a link to the
 * Prompt view) and `section` with the three sides' agreement, from one call.
 */
export async function showEvidence(
  section: HTMLElement,
  speaking: HTMLElement,
  id: number,
  collection: string | undefined,
) {
  fill(section, h('h3', null, 'Three sides'), h('p', { class: 'muted' }, 'loading…'));
  fill(speaking, h('h3', null, SPEAKING), h('p', { class: 'muted' }, 'loading…'));
  let evidence: Evidence;
  try {
    evidence = await call(
      api.GET('/v1/neurons/{id}/evidence', {
        params: { path: { id: String(id) }, query: { k: K, ...(collection ? { collection } : {}) } },
      }),
    );
  } catch (error) {
    if (!(error instanceof ApiError) || error.status >= 500 || error.status === 0) throw error;
    fill(
      section,
      h('h3', null, 'Three sides'),
      h('p', { class: 'muted', id: 'evidence-missing' }, `Not available: ${error.message}.`),
    );
    fill(speaking, h('h3', null, SPEAKING), h('p', { class: 'muted' }, `Not available: ${error.message}.`));
    return;
  }
  showSpeaking(speaking, evidence);
  const measure = evidence.multimodality;
  const rho = (value: { rho: number | null; significant: boolean | null }) =>
    value.rho === null ? '–' : `${fmt(value.rho, 2)}${value.significant ? ' ✓' : ''}`;
  const rank = (value: number | null, of: number, what: string) =>
    of === 0
      ? `not measured among the ${what}`
      : value === null
        ? `not among the ${of} ${what}`
        : `#${value} of ${of} ${what}`;
  const side = (title: string, body: Node, missing?: string) =>
    h(
      'section',
      { class: 'side' },
      h('h4', null, title),
      missing ? h('p', { class: 'muted' }, missing) : body,
    );
  fill(
    section,
    h('h3', null, 'Three sides'),
    measure
      ? h(
          'p',
          { class: measure.multimodal ? 'verdict yes' : 'verdict no', id: 'evidence-verdict' },
          measure.multimodal
            ? `Multimodal: “${measure.topCategory}”, what it sees most, is also what it reads and speaks for.`
            : `Not multimodal by the measure: “${measure.topCategory}”, what it sees most, is ${rank(measure.speakingRank, measure.speakingOf, 'texts')} and ${rank(measure.readingRank, measure.readingOf, 'words')}.`,
        )
      : null,
    measure
      ? h(
          'dl',
          { class: 'facts inline', id: 'evidence-agreement' },
          h('dt', null, 'ρ seeing–speaking'),
          h('dd', null, rho(measure.agreement.seeingSpeaking)),
          h('dt', null, 'ρ seeing–reading'),
          h('dd', null, rho(measure.agreement.seeingReading)),
          h('dt', null, 'ρ reading–speaking'),
          h('dd', null, rho(measure.agreement.readingSpeaking)),
          h('dt', null, 'shared concepts'),
          h('dd', null, String(measure.shared)),
        )
      : null,
    h(
      'div',
      { class: 'compare sides' },
      side(
        'Seeing',
        scoreBars(
          (evidence.seeing?.categories ?? [])
            .slice(0, K)
            .map((item) => ({ name: item.category, value: item.mean, note: `${item.images} img` })),
        ),
        evidence.seeing ? undefined : evidence.seeingUnavailable,
      ),
      side(
        'Reading',
        scoreBars(
          (evidence.reading?.words ?? []).map((item) => ({ name: item.word, value: item.activation })),
        ),
        evidence.reading ? undefined : evidence.readingUnavailable,
      ),
      side(
        'Speaking for',
        h(
          'div',
          { id: 'evidence-speaking' },
          scoreBars(evidence.speaking.texts.map((item) => ({ name: item.text, value: item.attribution }))),
        ),
      ),
    ),
    evidence.labels.length
      ? h(
          'section',
          { id: 'evidence-labels' },
          h('h4', null, 'Automatic labels (CLIP-Dissect soft-WPMI)'),
          scoreBars(
            evidence.labels.slice(0, 5).map((label) => ({
              name: label.concept,
              value: label.score,
              note:
                label.evidence.topImagesInCategory !== null
                  ? `${label.evidence.topImagesInCategory} of its top ${label.evidence.topImages}`
                  : undefined,
            })),
          ),
        )
      : null,
  );
}
