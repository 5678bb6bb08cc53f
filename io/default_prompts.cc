// The default prompt set, compiled in so the binary needs no data files;
// data/prompts/default.txt is this list written out (a test keeps them equal).
#include "io/prompts.h"

namespace diffsearch::io {

const std::vector<std::string>& default_prompts() {
  // Varied on purpose: CLIP score and speedups are averaged over these, so
  // they span people, animals, objects, scenes, legible text and art styles.
  static const std::vector<std::string> prompts = {
      // People
      "an elderly fisherman mending a net on a wooden pier at dawn",
      "a young woman reading a book in a sunlit library window seat",
      "two children building a sandcastle on a windy beach",
      "a chef tossing vegetables in a flaming wok in a busy kitchen",
      "a street musician playing a violin under a stone archway",
      "a portrait of a man with a grey beard wearing a knitted hat",
      "a group of friends laughing around a campfire at night",
      "a ballet dancer mid-leap on an empty stage lit by a single spotlight",
      "a farmer carrying a basket of apples through an orchard",
      "an astronaut floating inside a cluttered space station module",
      "a grandmother teaching her grandson to bake bread",
      "a cyclist racing down a mountain road in the rain",
      // Animals
      "a red fox sitting in fresh snow at the edge of a pine forest",
      "a tabby cat asleep on a stack of old books",
      "a golden retriever catching a frisbee in a park",
      "a herd of elephants crossing a dusty river at sunset",
      "a close-up of a hummingbird drinking from a purple flower",
      "a sea turtle swimming over a coral reef",
      "an owl perched on a mossy branch under a full moon",
      "a horse galloping across a misty meadow",
      "a pair of penguins standing on an iceberg",
      "a chameleon on a leaf, its skin shifting from green to orange",
      "a border collie herding sheep on a green hillside",
      "a jellyfish glowing in dark blue water",
      // Objects
      "a steaming cup of coffee on a rustic wooden table",
      "a vintage typewriter with a sheet of paper in it",
      "a bowl of ripe strawberries and blueberries on a white plate",
      "an antique brass pocket watch lying on a map",
      "a red bicycle leaning against a yellow brick wall",
      "a glass bottle with a ship model inside it",
      "a pair of worn leather boots beside a front door",
      "a stack of colorful macarons on a marble counter",
      "an old film camera next to a roll of film",
      "a ceramic teapot with steam rising from its spout",
      "a wooden chess board in the middle of a game",
      "a bouquet of sunflowers in a blue glass vase",
      // Scenes
      "a narrow cobblestone street in an old European town at dusk",
      "a snowy mountain peak reflected in a still alpine lake",
      "a crowded night market with hanging lanterns and food stalls",
      "a lighthouse on a rocky cliff during a storm",
      "a quiet subway platform late at night",
      "a field of lavender stretching to the horizon",
      "a futuristic city skyline with flying cars at sunset",
      "a cozy cabin interior with a fireplace and a sleeping dog",
      "a waterfall in a lush tropical rainforest",
      "a desert highway with a lone gas station under a starry sky",
      "an abandoned greenhouse overgrown with vines",
      "a harbor full of fishing boats on a foggy morning",
      // Text in images
      "a neon sign that reads 'OPEN ALL NIGHT' above a diner door",
      "a chalkboard menu outside a café listing today's soups",
      "a birthday cake with 'Happy 30th Anna' written in icing",
      "a vintage travel poster that says 'Visit the Moon'",
      "a street sign pointing to 'Main St' and 'Oak Ave'",
      "a hand-painted wooden sign saying 'Fresh Eggs' at a farm gate",
      "a protest placard reading 'Save the Bees' held up in a crowd",
      "a book cover titled 'The Last Garden' with gold lettering",
      "a coffee mug printed with the words 'But First, Coffee'",
      "a graffiti mural spelling 'HELLO' in bright bubble letters",
      // Art styles
      "an oil painting of a stormy sea in the style of the old masters",
      "a watercolor illustration of a fox in autumn leaves",
      "a pixel art scene of a castle on a hill",
      "a charcoal sketch of an old man's weathered face",
      "a ukiyo-e woodblock print of a wave crashing near a mountain",
      "a low-poly 3D render of a floating island",
      "a pop art portrait of a woman with bold dots and primary colors",
      "a pencil drawing of a cathedral interior with detailed arches",
      "a stained glass window depicting a peacock",
      "an impressionist painting of a garden with a footbridge",
      "a cyberpunk digital illustration of a rainy alley with neon lights",
      "a children's book illustration of a bear having a picnic",
      "a minimalist vector logo of a mountain and the sun",
      "a baroque still life with fruit, a skull and a candle",
      // Mixed and harder compositions
      "a cat wearing a tiny astronaut helmet, studio photograph",
      "a robot watering plants on a balcony garden",
      "a teddy bear riding a skateboard in Times Square",
      "three blue cubes stacked on top of a red sphere",
      "a dragon made of clouds flying over a city",
      "an aerial photograph of a winding river through autumn forest",
      "a macro photograph of dew drops on a spider web",
      "a split image of a tree in summer on the left and winter on the right",
  };
  return prompts;
}

}  // namespace diffsearch::io
