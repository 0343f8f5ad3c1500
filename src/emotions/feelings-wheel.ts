/**
 * The feelings wheel that Goh et al. (2021) used for the emotion neurons of CLIP: seven core
 * emotions, each with a ring of middle words and, for every middle word, two outer words
 * (core → middle → outer, 130 places). A few words sit in two places (e.g. "embarrassed" under
 * disgusted/disapproving and under sad/hurt), so the wheel names 126 distinct emotions. The article
 * turns each word into text with three templates; "{}" stands for the word in the service's templates.
 */

export interface WheelNode {
  name: string;
  children?: WheelNode[];
}

type Ring = Record<string, readonly [string, string]>;

/** core → { middle → [outer, outer] }, in the article's order. */
const RINGS: Record<string, Ring> = {
  Fearful: {
    Scared: ['Helpless', 'Frightened'],
    Anxious: ['Overwhelmed', 'Worried'],
    Insecure: ['Inadequate', 'Inferior'],
    Weak: ['Worthless', 'Insignificant'],
    Rejected: ['Excluded', 'Persecuted'],
    Threatened: ['Nervous', 'Exposed'],
  },
  Angry: {
    'Let down': ['Betrayed', 'Resentful'],
    Humiliated: ['Disrespected', 'Ridiculed'],
    Bitter: ['Indignant', 'Violated'],
    Mad: ['Furious', 'Jealous'],
    Aggressive: ['Provoked', 'Hostile'],
    Frustrated: ['Infuriated', 'Annoyed'],
    Distant: ['Withdrawn', 'Numb'],
    Critical: ['Skeptical', 'Dismissive'],
  },
  Disgusted: {
    Disapproving: ['Judgmental', 'Embarrassed'],
    Disappointed: ['Appalled', 'Revolted'],
    Awful: ['Nauseated', 'Detestable'],
    Repelled: ['Horrified', 'Hesitant'],
  },
  Sad: {
    Hurt: ['Embarrassed', 'Disappointed'],
    Depressed: ['Inferior', 'Empty'],
    Guilty: ['Remorseful', 'Ashamed'],
    Despair: ['Powerless', 'Grief'],
    Vulnerable: ['Fragile', 'Victimized'],
    Lonely: ['Abandoned', 'Isolated'],
  },
  Happy: {
    Optimistic: ['Inspired', 'Hopeful'],
    Trusting: ['Intimate', 'Sensitive'],
    Peaceful: ['Thankful', 'Loving'],
    Powerful: ['Creative', 'Courageous'],
    Accepted: ['Valued', 'Respected'],
    Proud: ['Confident', 'Successful'],
    Interested: ['Inquisitive', 'Curious'],
    Content: ['Joyful', 'Free'],
    Playful: ['Cheeky', 'Aroused'],
  },
  Surprised: {
    Excited: ['Energetic', 'Eager'],
    Amazed: ['Awe', 'Astonished'],
    Confused: ['Perplexed', 'Disillusioned'],
    Startled: ['Dismayed', 'Shocked'],
  },
  Bad: {
    Tired: ['Unfocused', 'Sleepy'],
    Stressed: ['Out of control', 'Overwhelmed'],
    Busy: ['Rushed', 'Pressured'],
    Bored: ['Apathetic', 'Indifferent'],
  },
};

/** The wheel as a tree, in the shape of the article's published `feelings-wheel.json`. */
export const FEELINGS_WHEEL: readonly WheelNode[] = Object.entries(RINGS).map(([core, middles]) => ({
  name: core,
  children: Object.entries(middles).map(([middle, outer]) => ({
    name: middle,
    children: outer.map((name) => ({ name })),
  })),
}));

/** The article's three emotion templates; "{}" stands for the emotion word. */
export const EMOTION_TEMPLATES: readonly string[] = [
  'i am feeling {}',
  'Me feeling {} on my face',
  'a photo of me with a {} expression on my face',
];

export type Ring3 = 'core' | 'middle' | 'outer';

export interface WheelEmotion {
  /** Lower-case word, as the article's sparse codes name it ("let down", "out of control"). */
  name: string;
  /** The core emotion(s) it sits under (two for a word placed twice under different cores). */
  cores: string[];
  /** Its innermost ring (a word placed twice keeps the inner of its places). */
  ring: Ring3;
}

/** The 126 distinct emotions of the wheel, in wheel order (first place wins). */
export const WHEEL_EMOTIONS: readonly WheelEmotion[] = (() => {
  const byName = new Map<string, WheelEmotion>();
  const place = (word: string, core: string, ring: Ring3) => {
    const name = word.toLowerCase();
    const seen = byName.get(name);
    if (!seen) byName.set(name, { name, cores: [core.toLowerCase()], ring });
    else if (!seen.cores.includes(core.toLowerCase())) seen.cores.push(core.toLowerCase());
  };
  for (const core of FEELINGS_WHEEL) {
    place(core.name, core.name, 'core');
    for (const middle of core.children ?? []) {
      place(middle.name, core.name, 'middle');
      for (const outer of middle.children ?? []) place(outer.name, core.name, 'outer');
    }
  }
  return [...byName.values()];
})();

export const WHEEL_EMOTION_NAMES: readonly string[] = WHEEL_EMOTIONS.map((emotion) => emotion.name);

const WHEEL_INDEX = new Map(WHEEL_EMOTIONS.map((emotion) => [emotion.name, emotion]));

/** The wheel's entry for a word (case-insensitive), or undefined. */
export function wheelEmotion(name: string): WheelEmotion | undefined {
  return WHEEL_INDEX.get(name.trim().toLowerCase());
}
